/** A tensor as plain data, so it crosses to the inference worker. */
export interface InputTensor {
  type: 'float32' | 'int64';
  data: Float32Array | number[];
  dims: number[];
}

/**
 * What the vision graph takes for a set of visual units (llava: a frame; Qwen2-VL: a temporal slice of
 * two frames) and the LLM-level token grid each unit becomes. The runner encodes `batch` units at a
 * time: `perUnit` tensors are split along their first dimension, `shared` ones go whole to every batch.
 */
export interface VisionInput {
  units: number;
  perUnit: Record<string, InputTensor>;
  shared: Record<string, InputTensor>;
  gridRows: number;
  gridCols: number;
  /** Units per vision-graph run, bounding its activation memory (attention is quadratic in a unit's patches). */
  batch: number;
}

/** The first `count` units of `t` starting at unit `start`. */
export function unitSlice(t: InputTensor, units: number, start: number, count: number): InputTensor {
  const per = t.data.length / units;
  const dims = [count, ...t.dims.slice(1)];
  const data =
    t.data instanceof Float32Array
      ? t.data.subarray(start * per, (start + count) * per)
      : t.data.slice(start * per, (start + count) * per);
  return { type: t.type, data, dims };
}

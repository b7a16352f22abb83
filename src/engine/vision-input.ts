/** A tensor as plain data, so it crosses to the inference worker. */
export interface InputTensor {
  type: 'float32' | 'int64';
  data: Float32Array | number[];
  dims: number[];
}

/**
 * A graph run after the vision graph that maps its per-patch outputs to the LLM tokens (OneVision: a video
 * frame's bilinear pooling, an image's anyres packing). It takes each vision output as `patch_<name>`
 * plus `inputs`, and outputs `units` units of gridRows × gridCols tokens under the vision output names.
 * One that keeps the units (as many out as in) runs with every batch; one that packs them runs once.
 */
export interface PostVision {
  graph: string;
  inputs: Record<string, InputTensor>;
  units: number;
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
  /** Maps the vision graph's units to the LLM's (then `post.units` of gridRows × gridCols tokens). */
  post?: PostVision;
  /** A unit made of token grids of different shapes (see VisualPlan.subgrids). */
  subgrids?: { rows: number; cols: number }[];
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

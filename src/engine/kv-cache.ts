import ort from 'onnxruntime-node';

/**
 * The KV cache of one decoder segment: one key and one value buffer [1, kvHeads, capacity, headDim] per
 * layer, preallocated to the planned length. The segment graph reads them as inputs (ONNX Runtime wraps the
 * buffers, no copy) and returns only the rows a run adds, which `append` writes after the rows held.
 */
export class SegmentKvCache {
  readonly keys: ort.Tensor[] = [];
  readonly values: ort.Tensor[] = [];
  /** Tokens currently held (the same for every layer of the segment). */
  length = 0;

  constructor(
    readonly layers: readonly number[],
    readonly kvHeads: number,
    readonly headDim: number,
    readonly capacity: number,
  ) {
    const dims = [1, kvHeads, capacity, headDim];
    for (let i = 0; i < layers.length; i++) {
      this.keys.push(new ort.Tensor('float32', new Float32Array(kvHeads * capacity * headDim), dims));
      this.values.push(new ort.Tensor('float32', new Float32Array(kvHeads * capacity * headDim), dims));
    }
  }

  /** Writes `rows` new rows of every layer ([1, kvHeads, rows, headDim] each, in layer order) after those held. */
  append(newKeys: readonly Float32Array[], newValues: readonly Float32Array[], rows: number): void {
    if (this.length + rows > this.capacity) {
      throw new Error(`a KV cache of ${this.capacity} tokens cannot take ${rows} more after ${this.length}`);
    }
    const run = rows * this.headDim;
    const write = (dst: ort.Tensor, src: Float32Array) => {
      const data = dst.data as Float32Array;
      for (let h = 0; h < this.kvHeads; h++) {
        data.set(src.subarray(h * run, (h + 1) * run), (h * this.capacity + this.length) * this.headDim);
      }
    };
    this.layers.forEach((_, j) => {
      write(this.keys[j], newKeys[j]);
      write(this.values[j], newValues[j]);
    });
    this.length += rows;
  }

  get bytes(): number {
    return 2 * this.layers.length * this.kvHeads * this.capacity * this.headDim * 4;
  }

  /** Bytes holding tokens, as opposed to capacity reserved for them. */
  get usedBytes(): number {
    return 2 * this.layers.length * this.kvHeads * this.length * this.headDim * 4;
  }
}

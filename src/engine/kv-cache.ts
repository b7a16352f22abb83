import ort from 'onnxruntime-node';

/**
 * The KV cache of one decoder segment: one key and one value buffer per layer, preallocated to the
 * planned length and handed to GroupQueryAttention as both past and present, so the kernel appends
 * in place and a decode step copies nothing.
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

  get bytes(): number {
    return 2 * this.layers.length * this.kvHeads * this.capacity * this.headDim * 4;
  }

  /** Bytes holding tokens, as opposed to capacity reserved for them. */
  get usedBytes(): number {
    return 2 * this.layers.length * this.kvHeads * this.length * this.headDim * 4;
  }
}

import { float, type GraphBuilder, MS_DOMAIN } from './graph-builder.js';

/** Values of a decoder segment that every layer's attention shares. */
export interface CacheInputs {
  /** int32 [1]: tokens held before this run plus the run's rows, minus 1 (GroupQueryAttention's seqlens_k). */
  seqlensK: string;
  /** int32 scalar: tokens held after this run. */
  totalLength: string;
  /** bool scalar: the run is one new row on top of the cache (a decode step). */
  isDecodeStep: string;
  /** float [capacity]: 0 for the cache rows held, −∞ for the rest (see cacheMask). */
  pastMask: string;
}

export interface AttentionHeads {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * The per-segment values the cached attention needs: whether this run is a decode step (one row) and the
 * mask of the cache rows held. `pastKey` is any layer's past key [1, kvh, capacity, hd]: they share a size.
 */
export function cacheInputs(g: GraphBuilder, hidden: string, pastKey: string, seqlensK: string, totalLength: string) {
  const rows = g.op('Gather', [g.op('Shape', [hidden]), g.int64([1], true)]);
  const isDecodeStep = g.op('Equal', [rows, g.int64([1], true)]);
  const capacity = g.op('Gather', [g.op('Shape', [pastKey]), g.int64([2], true)]);
  const slots = g.op('Range', [g.int64([0], true), capacity, g.int64([1], true)]);
  const held = g.op('Less', [slots, g.op('Cast', [seqlensK], { to: 7 })]);
  const pastMask = g.op('Where', [held, g.scalar(0), g.scalar(Number.NEGATIVE_INFINITY)]);
  return { seqlensK, totalLength, isDecodeStep, pastMask };
}

/**
 * Attention of one layer over its KV cache, which is a graph input only: the graph never writes it, and
 * returns just this run's rotated keys and values ([1, kvh, rows, hd]) for the caller to append. A cache
 * returned as an output would be copied whole into a new JavaScript buffer after every run (ONNX Runtime's
 * Node binding copies outputs, preallocated or not), which made a decode step grow with the context.
 *
 * - A decode step (one row) attends to the held cache rows (masked beyond them) and to itself.
 * - Any other run is a prefill into an empty cache: GroupQueryAttention's causal attention over its rows.
 *
 * `q`, `k` are after RoPE: [1, rows, heads·hd]; `v` is [1, rows, kvh·hd]. Heads share KV heads in groups of
 * numHeads/numKvHeads, head i reading KV head ⌊i / group⌋, as GroupQueryAttention does.
 */
export function cachedAttention(
  g: GraphBuilder,
  qkv: { q: string; k: string; v: string },
  past: { key: string; value: string },
  cache: CacheInputs,
  heads: AttentionHeads,
  outputs: { attention: string; newKey: string; newValue: string },
): void {
  const { numHeads: nh, numKvHeads: kvh, headDim: hd } = heads;
  const scale = 1 / Math.sqrt(hd);
  const kvShape = [1, kvh, 'rows', hd];
  const decodeStep = g.subgraph('decode_step', () => {
    const q = g.op('Reshape', [qkv.q, g.int64([1, kvh, nh / kvh, hd])]);
    const k = g.op('Reshape', [qkv.k, g.int64([1, kvh, 1, hd])]);
    const v = g.op('Reshape', [qkv.v, g.int64([1, kvh, 1, hd])]);
    const scores = (keys: string) =>
      g.op('FusedMatMul', [q, keys], { transB: 1, alpha: float(scale) }, { domain: MS_DOMAIN });
    const pastScores = g.op('Add', [scores(past.key), cache.pastMask]);
    const probs = g.op('Softmax', [g.op('Concat', [pastScores, scores(k)], { axis: -1 })], { axis: -1 });
    const pastProbs = g.op('Slice', [probs, g.int64([0]), g.int64([-1]), g.int64([3])]);
    const selfProb = g.op('Slice', [probs, g.int64([-1]), g.int64([Number.MAX_SAFE_INTEGER]), g.int64([3])]);
    const mixed = g.op('Add', [g.op('MatMul', [pastProbs, past.value]), g.op('Mul', [selfProb, v])]);
    return [
      { value: g.op('Reshape', [mixed, g.int64([1, 1, nh * hd])]), type: 'float32', shape: [1, 1, nh * hd] },
      { value: k, type: 'float32', shape: kvShape },
      { value: v, type: 'float32', shape: kvShape },
    ];
  });
  const prefill = g.subgraph('prefill', () => {
    const [attention, key, value] = g.opN(
      'GroupQueryAttention',
      [qkv.q, qkv.k, qkv.v, '', '', cache.seqlensK, cache.totalLength],
      { num_heads: nh, kv_num_heads: kvh, scale: float(scale) },
      3,
      { domain: MS_DOMAIN },
    );
    return [
      { value: attention, type: 'float32', shape: [1, 'rows', nh * hd] },
      { value: key, type: 'float32', shape: kvShape },
      { value: value, type: 'float32', shape: kvShape },
    ];
  });
  g.opN('If', [cache.isDecodeStep], { then_branch: decodeStep, else_branch: prefill }, [
    outputs.attention,
    outputs.newKey,
    outputs.newValue,
  ]);
}

import type { GraphBuilder } from './graph-builder.js';

/**
 * Patch rows [batch, side², width] (row-major patch grid) regrouped so that row (hb, wb) holds the s×s patches
 * (hb·s + i, wb·s + j) in columns [(i·s + j)·width, …): [batch, (side/s)², s²·width]. This is transformers'
 * Idefics3Connector.pixel_shuffle.
 */
export function pixelShuffle(g: GraphBuilder, x: string, side: number, s: number, width: number): string {
  const t = side / s;
  const shuffled = g.op('Transpose', [groupAxes(g, x, side, s, [width])], { perm: [0, 1, 3, 2, 4, 5] });
  return g.op('Reshape', [shuffled, g.int64([0, t * t, s * s * width])]);
}

/** Per-patch values [batch, side², …width] averaged over each s×s patch group: [batch, (side/s)², …width]. */
export function patchGroupMean(g: GraphBuilder, x: string, side: number, s: number, width: readonly number[]): string {
  const t = side / s;
  const mean = g.op('ReduceMean', [groupAxes(g, x, side, s, width), g.int64([2, 4])], { keepdims: 0 });
  return g.op('Reshape', [mean, g.int64([0, t * t, ...width])]);
}

/** [batch, side², …width] → [batch, hb, i, wb, j, …width] with patch row hb·s + i and column wb·s + j. */
function groupAxes(g: GraphBuilder, x: string, side: number, s: number, width: readonly number[]): string {
  const t = side / s;
  return g.op('Reshape', [x, g.int64([0, t, s, t, s, ...width])]);
}

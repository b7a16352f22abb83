import type { Slot, StageResult, VisualTokens } from './types.js';

/**
 * Row indices of the k best scores, returned in ascending row order ("keep k" = pick, then re-sort).
 * Ties break toward the lower row, which is the lower original id since rows are in id order.
 */
export function topK(
  scores: ArrayLike<number>,
  k: number,
  best: 'largest' | 'smallest',
  rows?: readonly number[],
): number[] {
  const candidates = rows ? [...rows] : Array.from({ length: scores.length }, (_, i) => i);
  const sign = best === 'largest' ? -1 : 1;
  candidates.sort((a, b) => sign * (scores[a] - scores[b]) || a - b);
  return candidates.slice(0, Math.max(0, k)).sort((a, b) => a - b);
}

/** The upper median of a set of original ids: where a merged token sits (keep-original positions). */
export function upperMedian(ids: readonly number[]): number {
  const sorted = [...ids].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export function keepSlot(id: number): Slot {
  return { members: [id], mode: 'keep', positionOf: id };
}

/**
 * One token made from `members` at their upper-median position. 'anchor_plus_mean' anchors on the
 * upper-median member unless `anchor` names another token. One member needs no merging.
 */
export function mergeSlot(members: readonly number[], mode: 'mean' | 'anchor_plus_mean', anchor?: number): Slot {
  const sorted = [...members].sort((a, b) => a - b);
  const group = anchor === undefined || sorted.includes(anchor) ? sorted : [...sorted, anchor].sort((a, b) => a - b);
  const positionOf = upperMedian(group);
  if (sorted.length === 1 && (anchor === undefined || anchor === sorted[0])) return keepSlot(sorted[0]);
  if (mode === 'mean') return { members: sorted, mode, positionOf };
  return { members: sorted, mode, anchor: anchor ?? positionOf, positionOf };
}

/** A stage result from slots in any order: sorted by position, as the contract wants. */
export function stageResult(slots: Slot[]): StageResult {
  return { slots: slots.sort((a, b) => a.positionOf - b.positionOf) };
}

/** Keeps the given rows of `tokens` as they are. */
export function keepRows(tokens: VisualTokens, rows: readonly number[]): StageResult {
  return stageResult(rows.map((r) => keepSlot(tokens.ids[r])));
}

/** Row indices of each frame's alive tokens, frames in order (a frame with no alive token gets []). */
export function rowsByFrame(tokens: VisualTokens): number[][] {
  const out: number[][] = Array.from({ length: tokens.frames }, () => []);
  for (const [row, id] of tokens.ids.entries()) out[Math.floor(id / tokens.tokensPerFrame)].push(row);
  return out;
}

/**
 * The k best rows of `tokens` (ascending row order) such that every frame with alive tokens keeps at
 * least `minPerFrame` of them (its best), if k allows; the rest go to the best of all frames.
 */
export function topKWithFrameMinimum(
  tokens: VisualTokens,
  scores: ArrayLike<number>,
  k: number,
  best: 'largest' | 'smallest',
  minPerFrame: number,
): number[] {
  const first = minPerFrame > 0 ? rowsByFrame(tokens).flatMap((rows) => topK(scores, minPerFrame, best, rows)) : [];
  const guaranteed = topK(scores, k, best, first);
  const taken = new Set(guaranteed);
  const rest = topK(
    scores,
    k - guaranteed.length,
    best,
    tokens.ids.map((_, r) => r).filter((r) => !taken.has(r)),
  );
  return [...guaranteed, ...rest].sort((a, b) => a - b);
}

/**
 * The rows `rows` of a row-major [·, width] matrix as a [rows.length, width] matrix: a copy, or `data`
 * itself when the rows are all of it in order (nothing pruned yet — 21 MB at 8 × 729 tokens of width 896).
 * Read-only either way.
 */
export function gatherRows(data: Float32Array, width: number, rows: readonly number[]): Float32Array {
  if (rows.length * width === data.length && rows.every((r, i) => r === i)) return data;
  const out = new Float32Array(rows.length * width);
  for (const [i, r] of rows.entries()) out.set(data.subarray(r * width, (r + 1) * width), i * width);
  return out;
}

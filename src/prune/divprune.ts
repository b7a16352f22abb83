import { constantPlan, inputFrameQuotas, inputTokenTotal } from './budget.js';
import { readOptions } from './options.js';
import { gatherRows, keepRows, rowsByFrame } from './slots.js';
import type { MethodFactory } from './types.js';

/**
 * Greedy max–min diversity on a cosine-similarity matrix [n, n]: the first pick is the row farthest
 * (1 − cosine) from its nearest neighbour, each next pick the row farthest from everything picked so
 * far, tracked with a running minimum (O(n) per pick). Ties go to the lower row. Returns picks in order.
 */
export function maxMinDiverse(cos: Float32Array, n: number, k: number): number[] {
  if (k <= 0 || n === 0) return [];
  let first = 0;
  let firstNearest = -Infinity;
  for (let i = 0; i < n; i++) {
    let nearest = Infinity;
    for (let j = 0; j < n; j++) if (j !== i) nearest = Math.min(nearest, 1 - cos[i * n + j]);
    if (nearest > firstNearest) [first, firstNearest] = [i, nearest];
  }
  const picks = [first];
  const picked = new Uint8Array(n);
  picked[first] = 1;
  const minDist = Float64Array.from({ length: n }, (_, j) => 1 - cos[first * n + j]);
  while (picks.length < Math.min(k, n)) {
    let next = -1;
    for (let j = 0; j < n; j++) if (!picked[j] && (next < 0 || minDist[j] > minDist[next])) next = j;
    picks.push(next);
    picked[next] = 1;
    for (let j = 0; j < n; j++) minDist[j] = Math.min(minDist[j], 1 - cos[next * n + j]);
  }
  return picks;
}

/** DivPrune on the projected tokens, per frame: each frame's quota as its max–min diverse subset. */
export const createDivprune: MethodFactory = (request, options) => {
  readOptions('divprune', options, {});
  const quotas = inputFrameQuotas(request);
  return {
    name: 'divprune',
    layers: () => [],
    async input(signals, pairwise) {
      const kept: number[] = [];
      for (const [f, rows] of rowsByFrame(signals).entries()) {
        const cos = await pairwise.cosine(
          gatherRows(signals.tokens, signals.hidden, rows),
          rows.length,
          signals.hidden,
        );
        kept.push(...maxMinDiverse(cos, rows.length, quotas[f]).map((i) => rows[i]));
      }
      return keepRows(
        signals,
        kept.sort((a, b) => a - b),
      );
    },
    plannedTokensPerLayer: () => constantPlan(inputTokenTotal(request), request.numLayers),
  };
};

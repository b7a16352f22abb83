import { UsageError } from '../errors.js';
import { constantPlan, frameQuotas, inputTokenTotal } from './budget.js';
import { num, readOptions } from './options.js';
import { keepRows, rowsByFrame, topK } from './slots.js';
import type { MethodFactory } from './types.js';

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let j = 0; j < a.length; j++) {
    ab += a[j] * b[j];
    aa += a[j] * a[j];
    bb += b[j] * b[j];
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}

/**
 * DyCoke's temporal token merging (TTM) on the projected tokens. Frames come in windows of `window`;
 * the first frame of a window (the anchor) is kept whole. Every other frame is compared patch by patch
 * with its reference frame, as the released code pairs them: an odd frame with the frame before it,
 * an even one with its window's anchor. It keeps its least similar patches.
 *
 * The paper's fixed pruning ratio k is replaced by the budget (as FastV's R is): the non-anchor frames
 * share round(π·F·N) − anchors·N tokens evenly, so budgets below the anchors' share are out of reach.
 */
export const createDycoke: MethodFactory = (request, options) => {
  const { window } = readOptions('dycoke', options, { window: num(4, { min: 1, integer: true }) });
  const { frames: F, tokensPerFrame: N, budget } = request;
  const isAnchor = (f: number) => f % window === 0;
  const nonAnchors = Array.from({ length: F }, (_, f) => f).filter((f) => !isAnchor(f));
  const anchorTokens = (F - nonAnchors.length) * N;
  const shared = inputTokenTotal(request) - anchorTokens;
  if (shared < nonAnchors.length) {
    const lo = (anchorTokens + nonAnchors.length) / (F * N);
    throw new UsageError(
      `dycoke keeps every ${window}th frame whole and cannot reach a budget of ${budget} with ${F} frames`,
      lo < 1
        ? `dycoke's budgets here are [${lo.toFixed(3)}, 1]; use a larger budget or another method`
        : `with ${F} frames dycoke prunes nothing: use budget 1 or another method`,
    );
  }
  const quotas = new Map(frameQuotas(shared, nonAnchors.length).map((q, i) => [nonAnchors[i], q]));
  return {
    name: 'dycoke',
    layers: () => [],
    async input(signals) {
      const d = signals.hidden;
      const rowOf = new Map(signals.ids.map((id, r) => [id, r]));
      const row = (r: number) => signals.tokens.subarray(r * d, (r + 1) * d);
      const kept: number[] = [];
      for (const [f, rows] of rowsByFrame(signals).entries()) {
        const quota = quotas.get(f);
        // Anchors have no quota: they are kept whole.
        if (quota === undefined) {
          kept.push(...rows);
          continue;
        }
        const ref = f % 2 === 1 ? f - 1 : f - (f % window);
        const similarity = new Float64Array(signals.ids.length);
        for (const r of rows) {
          const refRow = rowOf.get(ref * N + (signals.ids[r] % N));
          similarity[r] = refRow === undefined ? -Infinity : cosine(row(r), row(refRow));
        }
        kept.push(...topK(similarity, quota, 'smallest', rows));
      }
      return keepRows(
        signals,
        kept.sort((a, b) => a - b),
      );
    },
    plannedTokensPerLayer: () => constantPlan(anchorTokens + shared, request.numLayers),
  };
};

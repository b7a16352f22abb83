import { constantPlan, inputFrameQuotas, inputTokenTotal } from './budget.js';
import { choice, num, readOptions } from './options.js';
import { gatherRows, keepRows, rowsByFrame, topK } from './slots.js';
import type { MethodFactory } from './types.js';

/**
 * G-Prune on the projected tokens, per frame (`scope` frame, each frame keeping its quota) or over the
 * whole clip (`scope` clip, keeping round(π·F·N) tokens wherever they are).
 */
export const createGprune: MethodFactory = (request, options) => {
  const opts = readOptions('gprune', options, {
    scope: choice(['frame', 'clip'], 'frame'),
    threshold: num(0.5, { min: -1, max: 1 }),
    temperature: num(0.03, { min: Number.MIN_VALUE }),
    iterations: num(5, { min: 0, integer: true }),
  });
  const quotas = opts.scope === 'frame' ? inputFrameQuotas(request) : [inputTokenTotal(request)];
  return {
    name: 'gprune',
    layers: () => [],
    async input(signals, pairwise) {
      const d = signals.hidden;
      const groups = opts.scope === 'frame' ? rowsByFrame(signals) : [signals.ids.map((_, r) => r)];
      // Groups of one size go to the kernel in one batch (every frame, when nothing was pruned before).
      const batches = new Map<number, number[]>();
      for (const [g, rows] of groups.entries()) {
        let batch = batches.get(rows.length);
        if (!batch) {
          batch = [];
          batches.set(rows.length, batch);
        }
        batch.push(g);
      }
      const kept: number[] = [];
      for (const [n, members] of batches) {
        const rows = members.flatMap((g) => groups[g]);
        const { information, degree } = await pairwise.propagate(
          gatherRows(signals.tokens, d, rows),
          members.length,
          n,
          d,
          opts,
        );
        const score = information.map((v, i) => v / degree[i]);
        for (const [b, g] of members.entries()) {
          const batchRows = Array.from({ length: n }, (_, i) => b * n + i);
          kept.push(...topK(score, quotas[g], 'largest', batchRows).map((i) => rows[i]));
        }
      }
      return keepRows(
        signals,
        kept.sort((a, b) => a - b),
      );
    },
    plannedTokensPerLayer: () => constantPlan(inputTokenTotal(request), request.numLayers),
  };
};

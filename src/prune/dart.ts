import { constantPlan, inputFrameQuotas, inputTokenTotal } from './budget.js';
import { num, readOptions } from './options.js';
import { gatherRows, keepRows, rowsByFrame, topK } from './slots.js';
import type { MethodFactory } from './types.js';

/**
 * DART (duplication-aware) at the LLM input. Pivots: the `pivots_visual` visual tokens of largest L1
 * norm (over the whole clip) and the last `pivots_text` text tokens. Every other visual token scores
 * its largest cosine similarity to a pivot; each frame keeps its visual pivots and fills its quota with
 * its least similar tokens. The quotas spread round(π·F·N) evenly over the frames; a frame holding
 * more visual pivots than its quota keeps them all (only possible at quotas below `pivots_visual`).
 */
export const createDart: MethodFactory = (request, options) => {
  const opts = readOptions('dart', options, {
    pivots_visual: num(4, { min: 1, integer: true }),
    pivots_text: num(4, { min: 0, integer: true }),
  });
  const quotas = inputFrameQuotas(request);
  return {
    name: 'dart',
    layers: () => [],
    async input(signals, pairwise) {
      const d = signals.hidden;
      const n = signals.ids.length;
      const l1 = new Float64Array(n);
      for (let r = 0; r < n; r++) for (let j = r * d; j < (r + 1) * d; j++) l1[r] += Math.abs(signals.tokens[j]);
      const visualPivots = topK(l1, opts.pivots_visual, 'largest');
      const textRows = signals.textTail.length / d;
      const textPivots = Math.min(opts.pivots_text, textRows);
      const pivots = new Float32Array((visualPivots.length + textPivots) * d);
      pivots.set(gatherRows(signals.tokens, d, visualPivots));
      pivots.set(signals.textTail.subarray((textRows - textPivots) * d), visualPivots.length * d);
      const m = pivots.length / d;
      const cos = await pairwise.crossCosine(signals.tokens, n, pivots, m, d);
      const isPivot = new Set(visualPivots);
      const similarity = new Float64Array(n);
      for (let r = 0; r < n; r++) {
        if (isPivot.has(r)) continue;
        let best = -Infinity;
        for (let p = 0; p < m; p++) best = Math.max(best, cos[r * m + p]);
        similarity[r] = best;
      }
      const kept = [...visualPivots];
      rowsByFrame(signals).forEach((rows, f) => {
        const candidates = rows.filter((r) => !isPivot.has(r));
        kept.push(...topK(similarity, quotas[f] - (rows.length - candidates.length), 'smallest', candidates));
      });
      return keepRows(
        signals,
        kept.sort((a, b) => a - b),
      );
    },
    plannedTokensPerLayer: () => constantPlan(inputTokenTotal(request), request.numLayers),
  };
};

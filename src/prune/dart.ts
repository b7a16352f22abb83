import { constantPlan, inputFrameQuotas, inputTokenTotal } from './budget.js';
import { num, readOptions } from './options.js';
import { keepRows, rowsByFrame, topK } from './slots.js';
import type { MethodFactory } from './types.js';

function unitRow(data: Float32Array, width: number, row: number): Float32Array {
  const v = data.slice(row * width, (row + 1) * width);
  let s = 0;
  for (const x of v) s += x * x;
  const norm = Math.sqrt(s);
  if (norm > 0) for (let j = 0; j < width; j++) v[j] /= norm;
  return v;
}

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
    async input(signals) {
      const d = signals.hidden;
      const n = signals.ids.length;
      const l1 = Float64Array.from({ length: n }, (_, r) => signals.tokens.subarray(r * d, (r + 1) * d).reduce((a, x) => a + Math.abs(x), 0));
      const visualPivots = topK(l1, opts.pivots_visual, 'largest');
      const textRows = signals.textTail.length / d;
      const pivots = [
        ...visualPivots.map((r) => unitRow(signals.tokens, d, r)),
        ...Array.from({ length: Math.min(opts.pivots_text, textRows) }, (_, i) => unitRow(signals.textTail, d, textRows - 1 - i)),
      ];
      const isPivot = new Set(visualPivots);
      const similarity = new Float64Array(n);
      for (let r = 0; r < n; r++) {
        if (isPivot.has(r)) continue;
        const u = unitRow(signals.tokens, d, r);
        let best = -Infinity;
        for (const p of pivots) {
          let s = 0;
          for (let j = 0; j < d; j++) s += u[j] * p[j];
          best = Math.max(best, s);
        }
        similarity[r] = best;
      }
      const kept = [...visualPivots];
      rowsByFrame(signals).forEach((rows, f) => {
        const candidates = rows.filter((r) => !isPivot.has(r));
        kept.push(...topK(similarity, quotas[f] - (rows.length - candidates.length), 'smallest', candidates));
      });
      return keepRows(signals, kept.sort((a, b) => a - b));
    },
    plannedTokensPerLayer: () => constantPlan(inputTokenTotal(request), request.numLayers),
  };
};

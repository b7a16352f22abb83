import { constantPlan, inputFrameQuotas, inputTokenTotal } from './budget.js';
import { num, readOptions } from './options.js';
import { keepRows, rowsByFrame, topK } from './slots.js';
import type { MethodFactory } from './types.js';

/** Row r of a [·, width] matrix scaled to unit length (a zero row stays zero). */
function unitRow(data: Float32Array, width: number, row: number): Float32Array {
  const v = data.slice(row * width, (row + 1) * width);
  const norm = Math.sqrt(dot(v, 0, v, 0, width));
  if (norm > 0) for (let j = 0; j < width; j++) v[j] /= norm;
  return v;
}

function dot(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, width: number): number {
  let s = 0;
  for (let j = 0; j < width; j++) s += a[aOffset + j] * b[bOffset + j];
  return s;
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
      const l1 = new Float64Array(n);
      for (let i = 0; i < n * d; i++) l1[Math.floor(i / d)] += Math.abs(signals.tokens[i]);
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
        const norm = Math.sqrt(dot(signals.tokens, r * d, signals.tokens, r * d, d)) || 1;
        similarity[r] = Math.max(...pivots.map((p) => dot(signals.tokens, r * d, p, 0, d))) / norm;
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

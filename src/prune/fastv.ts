import { UsageError } from '../errors.js';
import { roundHalfEven } from './budget.js';
import { num, readOptions } from './options.js';
import { keepRows, topK } from './slots.js';
import type { MethodFactory } from './types.js';

/**
 * FastV: at layer K, keep the visual tokens the last prompt token attends to most at layer K−1
 * (head-averaged, computed in-graph). The kept count k is set from the layer-averaged budget π:
 * (K·F·N + (L−K)·k) / L = π·F·N, so budgets below about K/L are out of reach.
 */
export const createFastv: MethodFactory = (request, options) => {
  const { K } = readOptions('fastv', options, { K: num(2, { min: 1, integer: true }) });
  const { budget, frames: F, tokensPerFrame: N, numLayers: L } = request;
  const all = F * N;
  if (K >= L)
    throw new UsageError(`fastv's layer K=${K} must be below the model's ${L} layers`, `choose K in 1..${L - 1}`);
  const keep = Math.min(all, roundHalfEven(((L * budget - K) / (L - K)) * all));
  if (keep < F) {
    const lo = (K * all + (L - K) * F) / (L * all);
    throw new UsageError(
      `fastv pruning at layer ${K} of ${L} cannot reach a layer-averaged budget of ${budget}`,
      `fastv's layer-averaged budgets here are [${lo.toFixed(3)}, 1]; ` +
        'use a larger budget, a smaller K, or another method',
    );
  }
  return {
    name: 'fastv',
    layers: () => [K],
    async layer(signals) {
      const attention = signals.lastTokenAttention;
      if (!attention) throw new Error(`fastv needs the last token's attention row at layer ${signals.layer}`);
      return keepRows(signals, topK(attention, keep, 'largest'));
    },
    plannedTokensPerLayer: () => Array.from({ length: L }, (_, l) => (l < K ? all : keep)),
  };
};

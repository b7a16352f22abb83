import { Prng } from '../synth/prng.js';
import { constantPlan, inputFrameQuotas, inputTokenTotal } from './budget.js';
import { readOptions } from './options.js';
import { keepRows, rowsByFrame } from './slots.js';
import type { MethodFactory } from './types.js';

/** A seeded uniform sample of each frame's quota of projected tokens (the budget spread evenly over frames). */
export const createRandom: MethodFactory = (request, options) => {
  readOptions('random', options, {});
  const quotas = inputFrameQuotas(request);
  return {
    name: 'random',
    layers: () => [],
    async input(signals) {
      const prng = new Prng(request.seed >>> 0);
      const kept = rowsByFrame(signals).flatMap((rows, f) => prng.sample(rows, Math.min(quotas[f], rows.length)));
      return keepRows(
        signals,
        kept.sort((a, b) => a - b),
      );
    },
    plannedTokensPerLayer: () => constantPlan(inputTokenTotal(request), request.numLayers),
  };
};

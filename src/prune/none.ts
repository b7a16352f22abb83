import { constantPlan } from './budget.js';
import { readOptions } from './options.js';
import type { MethodFactory } from './types.js';

/** The unpruned reference: every visual token enters every layer, whatever the budget. */
export const createNone: MethodFactory = (request, options) => {
  readOptions('none', options, {});
  return {
    name: 'none',
    layers: () => [],
    plannedTokensPerLayer: () => constantPlan(request.frames * request.tokensPerFrame, request.numLayers),
  };
};

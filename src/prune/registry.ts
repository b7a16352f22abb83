import { UsageError } from '../errors.js';
import { validateBudget } from './budget.js';
import { createDart } from './dart.js';
import { createDivprune } from './divprune.js';
import { createDycoke } from './dycoke.js';
import { createFastv } from './fastv.js';
import { createGprune } from './gprune.js';
import { createNone } from './none.js';
import { createPool } from './pool.js';
import { createRandom } from './random.js';
import type { BudgetRequest, MethodFactory, PruneMethod } from './types.js';
import { createVisionzip } from './visionzip.js';
import { createVitcop } from './vitcop.js';

/** Every pruning method by the name users give it. */
export const METHODS: Readonly<Record<string, MethodFactory>> = {
  none: createNone,
  random: createRandom,
  pool: createPool,
  fastv: createFastv,
  visionzip: createVisionzip,
  divprune: createDivprune,
  dart: createDart,
  dycoke: createDycoke,
  gprune: createGprune,
  vitcop: createVitcop,
};

export const METHOD_NAMES: readonly string[] = Object.keys(METHODS);

/**
 * The budget a method runs at when none is given: the operating point its paper reports (1/9 of the
 * visual tokens for the token-selection methods; 2×2 pooling; FastV's and DyCoke's 50 %, whose floors
 * — everything kept before layer K, a window's first frame — make lower budgets unreachable on short clips).
 */
export const DEFAULT_BUDGETS: Readonly<Record<string, number>> = {
  none: 1,
  random: 0.111,
  pool: 0.25,
  fastv: 0.5,
  visionzip: 0.111,
  divprune: 0.111,
  dart: 0.111,
  dycoke: 0.5,
  gprune: 0.111,
  vitcop: 0.111,
};

/** The default budget of `name`, or a UsageError listing the methods. */
export function defaultBudget(name: string): number {
  const budget = Object.hasOwn(DEFAULT_BUDGETS, name) ? DEFAULT_BUDGETS[name] : undefined;
  if (budget === undefined)
    throw new UsageError(`unknown pruning method "${name}"`, `valid methods: ${METHOD_NAMES.join(', ')}`);
  return budget;
}

/**
 * The method `name` built for one query. Unknown names, budgets outside (0, 1] or below one token per
 * frame, and options the method does not have are UsageErrors listing the valid choices.
 */
export function createMethod(name: string, request: BudgetRequest, options: Record<string, unknown> = {}): PruneMethod {
  const factory = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!factory) throw new UsageError(`unknown pruning method "${name}"`, `valid methods: ${METHOD_NAMES.join(', ')}`);
  validateBudget(request);
  return factory(request, options);
}

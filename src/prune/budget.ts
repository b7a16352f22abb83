import { UsageError } from '../errors.js';
import type { BudgetRequest } from './types.js';

/** Python's round(): halves go to the even neighbour (methods.md's budget arithmetic). */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const frac = x - floor;
  if (frac > 0.5) return floor + 1;
  if (frac < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

function assertCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
}

/**
 * The budget every method accepts: π in (0, 1] and large enough for one visual token per frame on
 * average (π·N ≥ 1). Methods with layers that keep more (FastV, ViTCoP) check their own floor on top.
 */
export function validateBudget(request: BudgetRequest): void {
  assertCount('frames', request.frames);
  assertCount('tokensPerFrame', request.tokensPerFrame);
  assertCount('numLayers', request.numLayers);
  const { budget, tokensPerFrame: n } = request;
  const min = (1 / n).toFixed(4);
  const range = `valid budgets for ${n} tokens per frame: [1/${n} = ${min}, 1] (at least one token per frame)`;
  if (!Number.isFinite(budget) || budget <= 0 || budget > 1) {
    throw new UsageError(`budget ${budget} is outside (0, 1]`, range);
  }
  // The epsilon lets budget = 1/N (or a decimal rounding of it) through.
  if (budget * n < 1 - 1e-9) {
    throw new UsageError(`budget ${budget} keeps fewer than one visual token per frame`, range);
  }
}

/** Visual tokens a method that prunes once before the LLM keeps: round(π·F·N), ≥ one per frame. */
export function inputTokenTotal(request: BudgetRequest): number {
  const { budget, frames, tokensPerFrame } = request;
  return Math.max(frames, Math.min(frames * tokensPerFrame, roundHalfEven(budget * frames * tokensPerFrame)));
}

/**
 * Splits `total` tokens over `frames` as evenly as possible; frame f gets ⌊(f+1)·T/F⌋ − ⌊f·T/F⌋, so the
 * extra tokens are spread along the clip instead of piling up on its first frames.
 */
export function frameQuotas(total: number, frames: number): number[] {
  return Array.from(
    { length: frames },
    (_, f) => Math.floor(((f + 1) * total) / frames) - Math.floor((f * total) / frames),
  );
}

/** Per-frame quotas of a method that prunes once before the LLM. */
export function inputFrameQuotas(request: BudgetRequest): number[] {
  return frameQuotas(inputTokenTotal(request), request.frames);
}

/** The plan of a method whose visual token count does not change inside the LLM. */
export function constantPlan(tokens: number, numLayers: number): number[] {
  return new Array<number>(numLayers).fill(tokens);
}

/** The two budget numbers every query reports (methods.md §0, §4). */
export interface BudgetReport {
  /** Visual tokens entering the LLM. */
  input: number;
  /** Σ over layers of the visual tokens entering it, / L. */
  layerAveraged: number;
  inputFraction: number;
  layerAveragedFraction: number;
}

export function budgetReport(tokensPerLayer: readonly number[], frames: number, tokensPerFrame: number): BudgetReport {
  const all = frames * tokensPerFrame;
  const input = tokensPerLayer[0] ?? 0;
  const layerAveraged = tokensPerLayer.reduce((a, b) => a + b, 0) / Math.max(1, tokensPerLayer.length);
  return { input, layerAveraged, inputFraction: input / all, layerAveragedFraction: layerAveraged / all };
}

/** ViTCoP's per-budget constants (methods.md §1): r_v = Stage I keep ratio, p = VIC centre fraction. */
export const VITCOP_BUDGET_TABLE: readonly { budget: number; r_v: number; p: number }[] = [
  { budget: 1 / 3, r_v: 0.5, p: 0.18 },
  { budget: 2 / 9, r_v: 0.4, p: 0.15 },
  { budget: 1 / 9, r_v: 0.3, p: 0.12 },
];

export interface VitcopBudgetOptions {
  S: number;
  D: number;
  /** Stage II keeps at least this many tokens per frame. */
  minPerFrame: number;
  /** Stage III keeps at least this many tokens per frame (0 = the paper's global top-n3). */
  stage3MinPerFrame: number;
  /** Overrides of the table's values. */
  r_v?: number;
  p?: number;
}

export interface VitcopBudget {
  /** The Stage I keep ratio asked for (the table's, or the option's); n1 = floor(r_v·N) when reachable. */
  r_v: number;
  p: number;
  /** Stage I keeps n1 patches per frame. */
  n1: number;
  /** Stage II keeps R visual tokens. */
  R: number;
  /** Stage III keeps n3 visual tokens. */
  n3: number;
  S: number;
  D: number;
}

/** R and n3 that spend what is left of `tokenLayers` = L·π·F·N after S layers of `stageOne` tokens. */
function laterStageCounts(
  tokenLayers: number,
  stageOne: number,
  F: number,
  L: number,
  opts: VitcopBudgetOptions,
): { R: number; n3: number } {
  const { S, D, stage3MinPerFrame } = opts;
  const left = tokenLayers - S * stageOne;
  let R = roundHalfEven(left / (D - S + (L - D) / 5));
  let n3 = roundHalfEven(R / 5);
  if (n3 < F * stage3MinPerFrame) {
    n3 = F * stage3MinPerFrame;
    R = roundHalfEven((left - (L - D) * n3) / (D - S));
  }
  return { R, n3 };
}

/** R and n3 for a given n1, or undefined when they do not fit (see vitcopBudget). */
function stageCounts(
  tokenLayers: number,
  n1: number,
  F: number,
  L: number,
  opts: VitcopBudgetOptions,
): { R: number; n3: number } | undefined {
  const { R, n3 } = laterStageCounts(tokenLayers, F * n1, F, L, opts);
  const fits = n1 >= opts.minPerFrame && R <= F * n1 && R > F * opts.minPerFrame && R >= n3 && n3 >= 1;
  return fits ? { R, n3 } : undefined;
}

/**
 * Stage II and III counts when Stage I passed on only `alive` < F·n1 tokens (Stage 0 found the rest
 * static): the token-layers Stage I saved go to the later stages, at most keeping all `alive`.
 */
export function respentStageCounts(
  b: VitcopBudget,
  request: BudgetRequest,
  opts: VitcopBudgetOptions,
  alive: number,
): { R: number; n3: number } {
  const { budget: pi, frames: F, tokensPerFrame: N, numLayers: L } = request;
  const later = laterStageCounts(L * pi * F * N, alive, F, L, opts);
  const R = Math.min(alive, Math.max(b.R, later.R));
  return { R, n3: Math.min(R, Math.max(b.n3, later.n3)) };
}

/**
 * ViTCoP's counts for a target layer-averaged fraction π (methods.md §1).
 *
 * r_v and p come from the table row whose budget is nearest to π (ties go to the larger budget), so
 * budgets other than 1/3, 2/9, 1/9 use the constants of the closest published setting. R is solved from
 * the integer n1 = floor(r_v·N) rather than from r_v, so the plan's layer-averaged count is π·F·N up to
 * the rounding of R and n3 (methods.md's formula with r_v loses the floor of n1, up to 3 % at N = 64).
 * When that n1 cannot reach π (Stage II would need more than Stage I kept, or could not leave every frame
 * `minPerFrame` tokens plus one) the nearest n1 that can is used; with no such n1 — or with r_v given and
 * unreachable — the budget is a UsageError that gives ViTCoP's reachable range.
 */
export function vitcopBudget(request: BudgetRequest, opts: VitcopBudgetOptions): VitcopBudget {
  const { budget: pi, frames: F, tokensPerFrame: N, numLayers: L } = request;
  const { S, D, minPerFrame, stage3MinPerFrame } = opts;
  if (!(Number.isInteger(S) && Number.isInteger(D) && S >= 1 && S < D && D < L)) {
    throw new UsageError(
      `vitcop needs layers 1 ≤ S < D < L, got S=${S}, D=${D}, L=${L}`,
      `choose S and D in 1..${L - 1} with S < D`,
    );
  }
  const row = VITCOP_BUDGET_TABLE.reduce((best, r) =>
    Math.abs(r.budget - pi) < Math.abs(best.budget - pi) ? r : best,
  );
  const p = opts.p ?? row.p;
  const r_v = opts.r_v ?? row.r_v;
  const preferred = Math.floor(r_v * N);
  const tokenLayers = L * pi * F * N;
  const candidates =
    opts.r_v === undefined
      ? Array.from({ length: N }, (_, i) => i + 1).sort(
          (a, b) => Math.abs(a - preferred) - Math.abs(b - preferred) || a - b,
        )
      : [preferred];
  for (const n1 of candidates) {
    const counts = stageCounts(tokenLayers, n1, F, L, opts);
    if (counts) return { r_v, p, n1, ...counts, S, D };
  }
  const R = F * minPerFrame + 1;
  const lowest =
    S * F * (minPerFrame + 1) + (D - S) * R + (L - D) * Math.max(roundHalfEven(R / 5), F * stage3MinPerFrame, 1);
  const highest = D + (L - D) / 5;
  const from = (lowest / (L * F * N)).toFixed(3);
  const to = (highest / L).toFixed(3);
  throw new UsageError(
    `vitcop cannot reach a layer-averaged budget of ${pi} with L=${L}, S=${S}, D=${D}, N=${N}, F=${F}` +
      (opts.r_v === undefined ? '' : `, r_v=${opts.r_v}`),
    `vitcop's layer-averaged budgets are about [${from}, ${to}]; use a budget in that range or another method`,
  );
}

/** Visual tokens entering each layer under ViTCoP: F·n1 before S, R from S, n3 from D. */
export function vitcopPlan(b: VitcopBudget, frames: number, numLayers: number): number[] {
  return Array.from({ length: numLayers }, (_, l) => (l < b.S ? frames * b.n1 : l < b.D ? b.R : b.n3));
}

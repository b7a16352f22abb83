import type { PromptModel } from '../engine/context-fit.js';
import {
  BUDGET_STEPS,
  fitMemoryBudget,
  type MemoryPlan,
  predictPeak,
  type QuerySettings,
} from '../engine/memory-plan.js';
import type { ExecutionProvider } from '../engine/ort-session.js';
import { runtimeBaseline } from '../engine/runtime-baseline.js';
import type { PruneRequest } from '../engine/visual-query.js';
import { SieveError, UsageError } from '../errors.js';
import type { GraphManifest } from '../onnx/convert.js';
import { createMethod } from '../prune/registry.js';
import { formatBytes } from './cli-output.js';

const MB = 1024 * 1024;

/** What predicting a query's peak needs: the prompt side of the checkpoint and its converted graphs. */
export interface MemoryContext {
  model: PromptModel;
  manifest: GraphManifest;
  /** The process before any model (runtimeBaseline). */
  baselineBytes: number;
  question: string;
  prune: PruneRequest;
  /** Timestamps of k frames (the prompt may print them). */
  timestampsFor: (frames: number) => readonly number[];
}

/** The predicted peak of `s`, or undefined when the pruning method cannot run that many frames at that budget. */
export function predictQueryPeak(ctx: MemoryContext, s: QuerySettings): number | undefined {
  const { model, manifest } = ctx;
  const plan = model.family.plan(s.frames);
  const layout = model.family.layout(
    ctx.timestampsFor(s.frames).map((timestampS) => ({ timestampS })),
    plan,
    ctx.question,
  );
  const tokensPerUnit = plan.gridRows * plan.gridCols;
  const L = manifest.config.text.numLayers;
  let visualPerLayer: number[];
  if (ctx.prune.method === 'none') {
    visualPerLayer = new Array<number>(L).fill(plan.units * tokensPerUnit);
  } else {
    try {
      const method = createMethod(
        ctx.prune.method,
        { budget: s.budget, frames: plan.units, tokensPerFrame: tokensPerUnit, numLayers: L, seed: ctx.prune.seed },
        ctx.prune.options,
      );
      visualPerLayer = method.plannedTokensPerLayer();
    } catch (err) {
      if (err instanceof SieveError) return undefined;
      throw err;
    }
  }
  const shape = {
    units: plan.units,
    tokensPerUnit,
    textRows: layout.ids.length - layout.visualRows.length,
    visualPerLayer,
    maxNewTokens: s.maxNewTokens,
  };
  return predictPeak(manifest, shape, ctx.baselineBytes).total;
}

/**
 * The predicted peak of one query per run, over a set of questions (the longest one's prompt is the
 * largest) and `frames` frames: what `eval` and `tune` hold against a memory budget.
 */
export function predictRunPeaks(
  model: PromptModel,
  prepared: { manifest: GraphManifest; graphDir: string },
  ep: ExecutionProvider,
  runs: readonly PruneRequest[],
  settings: { frames: number; maxNewTokens: number; questions: readonly string[] },
): (number | undefined)[] {
  const question = settings.questions.reduce((a, q) => (q.length > a.length ? q : a), '');
  const context = {
    model,
    manifest: prepared.manifest,
    baselineBytes: runtimeBaseline(prepared.graphDir, ep),
    question,
    timestampsFor: (k: number) => Array.from({ length: k }, (_, i) => i),
  };
  return runs.map((run) =>
    predictQueryPeak(
      { ...context, prune: run },
      { frames: settings.frames, budget: run.budget, maxNewTokens: settings.maxNewTokens },
    ),
  );
}

/**
 * The settings `sieve ask` runs with under `budgetMb`: the request when it fits, else fewer frames, a
 * lower pruning budget, a shorter answer (in that order). Nothing fitting is a UsageError (exit 2) that
 * names the smallest configuration and what it needs.
 */
export function planAskMemory(ctx: MemoryContext, requested: QuerySettings, budgetMb: number): MemoryPlan {
  const budgets = ctx.prune.method === 'none' ? [] : BUDGET_STEPS;
  const fit = fitMemoryBudget(requested, budgets, budgetMb * MB, (s) => predictQueryPeak(ctx, s));
  if (fit.fits) return fit.plan;
  const s = fit.smallest;
  const needMb = Math.ceil(fit.smallestBytes / MB);
  const pruned = ctx.prune.method === 'none' ? '' : `, ${ctx.prune.method} at budget ${round(s.budget)}`;
  throw new UsageError(
    `a memory budget of ${budgetMb} MB fits no configuration of this model: the smallest, 1 frame${pruned} ` +
      `and ${s.maxNewTokens} answer token, needs ${formatBytes(fit.smallestBytes)} (${needMb} MB)`,
    `raise --memory-budget (or memory.budget_mb) to at least ${needMb}` +
      (ctx.manifest.dtype === 'int4' ? '' : ', or use smaller weights (--dtype int8 or int4)'),
  );
}

/** The one line `sieve ask` prints when the memory budget made it lower something. */
export function memoryNotice(plan: MemoryPlan, requested: QuerySettings, budgetMb: number): string {
  const s = plan.settings;
  const changes = plan.degraded.map((d) =>
    d === 'frames'
      ? `${s.frames} of ${requested.frames} frames`
      : d === 'budget'
        ? `pruning budget ${round(s.budget)} instead of ${round(requested.budget)}`
        : `at most ${s.maxNewTokens} answer tokens instead of ${requested.maxNewTokens}`,
  );
  return (
    `the request needs more than the memory budget of ${budgetMb} MB: using ${changes.join(', ')} ` +
    `(predicted peak ${formatBytes(plan.predictedBytes)})`
  );
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { VlmPipeline } from '../engine/answer-pipeline.js';
import type { PruneRequest } from '../engine/visual-query.js';
import { UsageError } from '../errors.js';
import { type EvalSummary, evaluate, readSplit, summarise } from '../eval/evaluate.js';
import { resultsMarkdown } from '../eval/results-table.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { defaultBudget, METHOD_NAMES } from '../prune/registry.js';
import { predictRunPeaks } from './ask-memory.js';
import { displayPath, formatBytes, parseInteger, parseNumber, progressReporter } from './cli-output.js';
import { addRunOptions, type PrunedModel, pruningLayers, type RunFlags, resolveRunSettings } from './run-settings.js';

interface EvalFlags extends RunFlags {
  data: string;
  split: string;
  n?: string;
  json?: string;
  methods?: string;
  budgets?: string;
  table?: string;
  memoryBudget?: string;
}

/** Every requested method at every requested budget; `none` only runs unpruned (budget 1). */
export function evaluationRuns(
  methods: readonly string[],
  /** Undefined: each method at its default budget. */
  budgets: readonly number[] | undefined,
  base: PruneRequest,
  options: Record<string, Record<string, unknown>>,
): PruneRequest[] {
  const runs: PruneRequest[] = [];
  for (const method of methods) {
    if (!(METHOD_NAMES as readonly string[]).includes(method))
      throw new UsageError(`unknown method "${method}"`, `valid methods: ${METHOD_NAMES.join(', ')}, or all`);
    const methodBudgets = budgets === undefined ? [defaultBudget(method)] : budgets.filter((b) => b < 1);
    for (const budget of method === 'none' ? [1] : methodBudgets)
      runs.push({ ...base, method, budget, options: options[method] ?? {} });
  }
  return runs;
}

/** Splits runs into those the method can plan for this model and clip length, and the rest with the reason. */
export function feasibleRuns(runs: readonly PruneRequest[], frames: number, model: PrunedModel) {
  const ok: PruneRequest[] = [];
  const unreachable: { run: PruneRequest; reason: string }[] = [];
  for (const run of runs) {
    try {
      pruningLayers([run], frames)(model);
      ok.push(run);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      unreachable.push({ run, reason: err.message });
    }
  }
  return { runs: ok, unreachable };
}

function printSummary(s: EvalSummary): void {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const failed = s.errors ? `, ${s.errors} item(s) failed` : '';
  console.log(`${s.method} @ ${s.budget}: accuracy ${pct(s.accuracy)} (${s.correct}/${s.n})${failed}`);
  for (const [type, t] of Object.entries(s.byType))
    console.log(`  ${type.padEnd(10)} ${pct(t.accuracy).padStart(6)}  (${t.correct}/${t.n})`);
  console.log(
    `  mean ms: ${Object.entries(s.meanMs)
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(' · ')}; ` +
      `visual tokens: ${s.meanTokens.input.toFixed(0)} in, ${s.meanTokens.layerAveraged.toFixed(1)} layer-averaged`,
  );
}

export function registerEvalCommand(program: Command): void {
  addRunOptions(
    program
      .command('eval')
      .description(
        'accuracy of the full pipeline (MP4 decode → answer) on a synthetic split, ' +
          'per question type, per method and budget',
      ),
  )
    .option('--data <dir>', 'folder with <split>.jsonl and videos/ (from sieve synth)', 'data/synth')
    .option('--split <split>', 'train, val or test', 'test')
    .option('--n <n>', 'first N questions (default: all)')
    .option('--methods <list>', 'comma-separated pruning methods, or "all" (default: --method, else none)')
    .option(
      '--budgets <list>',
      'comma-separated layer-averaged budgets (default: --budget, or each method at its default)',
    )
    .option('--table <dir>', 'write the methods table there as methods.md and methods.json')
    .option('--json <file>', 'write every item and the summaries as JSON')
    .option(
      '--memory-budget <MB>',
      'skip the runs whose predicted peak exceeds it (default: memory.budget_mb, else none)',
    )
    .action(async (flags: EvalFlags) => {
      const settings = resolveRunSettings({ ...flags, maxNewTokens: flags.maxNewTokens ?? '6' });
      const { records, root } = readSplit(flags.data, flags.split);
      const n = flags.n === undefined ? records.length : Math.min(records.length, parseInteger(flags.n, '--n', 1));
      const methods =
        flags.methods === undefined
          ? [settings.prune.method]
          : flags.methods === 'all'
            ? [...METHOD_NAMES]
            : flags.methods.split(',').map((m) => m.trim());
      let budgets: number[] | undefined;
      if (flags.budgets !== undefined)
        budgets = flags.budgets.split(',').map((b) => parseNumber(b, '--budgets', 0, 1, { exclusiveMin: true }));
      else if (flags.methods === undefined) budgets = [settings.prune.budget];
      const requested = evaluationRuns(methods, budgets, settings.prune, settings.config.pruning.options);
      const frames = records[0]?.frames ?? 8;
      const budgetMb =
        flags.memoryBudget === undefined
          ? settings.config.memory.budget_mb
          : parseNumber(flags.memoryBudget, '--memory-budget', 0, 1e9, { exclusiveMin: true });
      const checkpoint = loadCheckpoint(settings.modelDir);
      const feasible = feasibleRuns(requested, frames, checkpoint);
      const unreachable = [...feasible.unreachable];
      let runs = feasible.runs;
      for (const u of unreachable) process.stderr.write(`skipping ${u.run.method} @ ${u.run.budget}: ${u.reason}\n`);
      if (runs.length === 0) {
        checkpoint.weights.close();
        throw new UsageError(
          'no method and budget left to evaluate',
          'pruning methods need a budget below 1 that they can reach, e.g. --budgets 0.111',
        );
      }

      const pipeline = await VlmPipeline.open(checkpoint, {
        dtype: settings.dtype,
        visionDtype: settings.visionDtype,
        quantBlock: settings.quantBlock,
        runtime: settings.runtime,
        pruningLayers: pruningLayers(runs, frames),
        warmKernels: runs.some((r) => r.method !== 'none'),
      });
      if (budgetMb !== undefined) {
        const questions = records.slice(0, n);
        const peaks = predictRunPeaks(checkpoint, pipeline.prepared, settings.runtime.ep, runs, {
          frames: Math.max(...questions.map((r) => r.frames ?? 8)),
          maxNewTokens: settings.maxNewTokens,
          questions: questions.map((r) => r.question),
        });
        const fits = (k: number) => (peaks[k] ?? Infinity) <= budgetMb * 1024 * 1024;
        for (const [k, run] of runs.entries()) {
          if (fits(k)) continue;
          const reason = `its predicted peak ${formatBytes(peaks[k] ?? 0)} exceeds the memory budget of ${budgetMb} MB`;
          process.stderr.write(`skipping ${run.method} @ ${run.budget}: ${reason}\n`);
          unreachable.push({ run, reason });
        }
        runs = runs.filter((_, k) => fits(k));
        if (runs.length === 0) {
          await pipeline.close();
          throw new UsageError(
            `no method and budget fits the memory budget of ${budgetMb} MB`,
            'raise --memory-budget (or memory.budget_mb), or evaluate lower budgets or fewer frames',
          );
        }
      }
      const modelPath = displayPath(pipeline.checkpoint.dir);
      const progress = progressReporter('eval');
      const correct = runs.map(() => 0);
      const seen = runs.map(() => 0);
      try {
        const questions = records.slice(0, n);
        const results = await evaluate(pipeline, questions, root, runs, {
          maxNewTokens: settings.maxNewTokens,
          onItem: (k, item, done, total) => {
            seen[k]++;
            if (item.correct) correct[k]++;
            if (item.error)
              process.stderr.write(
                `item ${item.index} (${item.video}, ${runs[k].method} @ ${runs[k].budget}): ${item.error}\n`,
              );
            progress.update(
              done,
              total,
              `${runs[k].method} @ ${runs[k].budget}: ${((100 * correct[k]) / seen[k]).toFixed(1)}%`,
            );
          },
        });
        progress.stop();
        const summaries = runs.map((run, k) => summarise(run, results[k]));
        summaries.forEach(printSummary);
        if (flags.table) {
          mkdirSync(flags.table, { recursive: true });
          const skipped = unreachable.map((u) => ({ ...u.run, reason: u.reason }));
          const meta = {
            model: modelPath,
            split: flags.split,
            questions: questions.length,
            command: `sieve ${process.argv.slice(2).join(' ')}`,
            date: new Date().toISOString().slice(0, 10),
            machine: `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}`,
          };
          const notes = unreachable.map((u) => `- ${u.run.method} at ${u.run.budget}: not run — ${u.reason}`);
          writeFileSync(
            join(flags.table, 'methods.md'),
            resultsMarkdown(summaries, meta) + (notes.length ? `\n${notes.join('\n')}\n` : ''),
          );
          writeFileSync(
            join(flags.table, 'methods.json'),
            `${JSON.stringify({ ...meta, summaries, unreachable: skipped }, null, 1)}\n`,
          );
          process.stderr.write(`table written to ${join(flags.table, 'methods.md')}\n`);
        }
        if (flags.json) {
          mkdirSync(dirname(resolve(flags.json)), { recursive: true });
          writeFileSync(
            flags.json,
            `${JSON.stringify({ model: modelPath, split: flags.split, summaries, items: results }, null, 1)}\n`,
          );
        }
      } finally {
        progress.stop();
        await pipeline.close();
      }
    });
}

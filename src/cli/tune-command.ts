import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import sharp from 'sharp';
import { VlmPipeline } from '../engine/answer-pipeline.js';
import { UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';
import { videoFrames } from '../media/sampler.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { METHOD_NAMES } from '../prune/registry.js';
import { listVideos, readQuestions } from '../tune/tune-inputs.js';
import { tunePlotSvg } from '../tune/tune-plot.js';
import { runKey, TuneState } from '../tune/tune-state.js';
import { type Recommendation, recommend, type TuneRow, tuneTable } from '../tune/tune-table.js';
import { writeRecommendation } from '../tune/write-recommendation.js';
import { predictRunPeaks } from './ask-memory.js';
import { displayPath, formatBytes, parseNumber, progressReporter } from './cli-output.js';
import { evaluationRuns, feasibleRuns } from './eval-command.js';
import { addRunOptions, pruningLayers, type RunFlags, resolveRunSettings } from './run-settings.js';

interface TuneFlags extends RunFlags {
  videos: string;
  questions?: string;
  targetAgreement: string;
  methods?: string;
  budgets: string;
  out: string;
  restart?: boolean;
  write?: string;
  memoryBudget?: string;
}

const DEFAULT_BUDGETS = '0.5,0.333,0.222,0.111';

function tableMarkdown(rows: readonly TuneRow[], rec: Recommendation): string {
  const labelled = rows.some((r) => r.accuracy !== undefined);
  const planned = rows.some((r) => r.predictedPeakBytes !== undefined);
  const head = [
    'method',
    'budget',
    'agreement',
    ...(labelled ? ['accuracy'] : []),
    'TTFT ms',
    'prefill ms',
    'peak KV',
    ...(planned ? ['predicted peak'] : []),
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const mark = r === rec.row ? ' **←**' : '';
    lines.push(
      `| ${r.method}${mark} | ${r.budget} | ${(100 * r.agreement).toFixed(1)}% | ` +
        (labelled ? `${(100 * (r.accuracy ?? 0)).toFixed(1)}% | ` : '') +
        `${r.meanFirstTokenMs.toFixed(0)} | ${r.meanPrefillMs.toFixed(0)} | ${formatBytes(r.peakKvBytes)} |` +
        (planned ? ` ${r.predictedPeakBytes === undefined ? '—' : formatBytes(r.predictedPeakBytes)} |` : '') +
        (r.errors ? ` ${r.errors} failed` : ''),
    );
  }
  return `${lines.join('\n')}\n\nRecommended: **${rec.row.method} @ ${rec.row.budget}**: ${rec.reason}.\n`;
}

export function registerTuneCommand(program: Command): void {
  addRunOptions(
    program
      .command('tune')
      .description(
        'answer your clips and questions unpruned and with every method × budget, and recommend the cheapest ' +
          'configuration whose answers agree with the unpruned ones',
      ),
  )
    .requiredOption('--videos <dir>', 'folder of clips to tune on')
    .option('--questions <file>', 'questions: one per line, or JSON lines {"question", "video"?, "answer"?}')
    .option('--target-agreement <share>', 'share of answers that must equal the unpruned answers', '0.95')
    .option('--methods <list>', `pruning methods to try (default: all of ${METHOD_NAMES.join(', ')})`)
    .option('--budgets <list>', 'budgets to try for each method', DEFAULT_BUDGETS)
    .option('--out <dir>', 'state (resumable), table and plot', 'sieve-tune')
    .option('--restart', 'start over instead of resuming the answers in --out')
    .option('--write <file>', 'put the recommendation into this config or pipeline YAML')
    .option(
      '--memory-budget <MB>',
      'recommend only configurations whose predicted peak fits (default: memory.budget_mb, else none)',
    )
    .action(async (flags: TuneFlags) => {
      const settings = resolveRunSettings({ ...flags, maxNewTokens: flags.maxNewTokens ?? '16' });
      const target = parseNumber(flags.targetAgreement, '--target-agreement', 0, 1);
      const budgetMb =
        flags.memoryBudget === undefined
          ? settings.config.memory.budget_mb
          : parseNumber(flags.memoryBudget, '--memory-budget', 0, 1e9, { exclusiveMin: true });
      const frames = 'frames' in settings.sampling ? settings.sampling.frames : undefined;
      if (frames === undefined) throw new UsageError('sieve tune samples a fixed number of frames', 'use --frames N');
      const videos = listVideos(flags.videos);
      const questions = readQuestions(flags.questions, videos);
      const methods = (flags.methods?.split(',') ?? [...METHOD_NAMES]).map((m) => m.trim()).filter((m) => m !== 'none');
      const budgets = flags.budgets.split(',').map((b) => parseNumber(b, '--budgets', 0, 1, { exclusiveMin: true }));
      const options = settings.config.pruning.options;
      const requested = [
        { ...settings.prune, method: 'none', budget: 1 },
        ...evaluationRuns(methods, budgets, settings.prune, options),
      ];
      const checkpoint = loadCheckpoint(settings.modelDir);
      const { runs, unreachable } = feasibleRuns(requested, frames, checkpoint);
      for (const u of unreachable) process.stderr.write(`skipping ${u.run.method} @ ${u.run.budget}: ${u.reason}\n`);

      mkdirSync(flags.out, { recursive: true });
      const stateFile = join(flags.out, 'state.jsonl');
      if (flags.restart) rmSync(stateFile, { force: true });
      const state = new TuneState(stateFile, {
        model: resolve(settings.modelDir),
        frames,
        maxNewTokens: settings.maxNewTokens,
        dtype: settings.dtype,
        visionDtype: settings.visionDtype,
        quantBlock: settings.quantBlock,
      });
      const total = runs.length * questions.length;
      const resumed = runs.reduce((a, run) => {
        const key = runKey(run.method, run.budget);
        return a + questions.filter((q) => state.has({ run: key, ...q })).length;
      }, 0);
      if (resumed) process.stderr.write(`resuming: ${resumed} of ${total} answers already in ${stateFile}\n`);

      const pipeline = await VlmPipeline.open(checkpoint, {
        dtype: settings.dtype,
        visionDtype: settings.visionDtype,
        quantBlock: settings.quantBlock,
        runtime: settings.runtime,
        pruningLayers: pruningLayers(runs, frames),
        warmKernels: true,
      });
      const progress = progressReporter('tune');
      let done = resumed;
      try {
        for (const video of videos) {
          const mine = questions.filter((q) => q.video === video);
          const pending = runs.filter((run) =>
            mine.some((q) => !state.has({ run: runKey(run.method, run.budget), ...q })),
          );
          if (pending.length === 0) continue;
          let clip: Frame[] = [];
          let clipError: string | undefined;
          try {
            clip = await lastValueFrom(videoFrames(join(flags.videos, video), { frames }).pipe(toArray()));
          } catch (err) {
            clipError = (err as Error).message;
          }
          for (const run of pending) {
            const key = runKey(run.method, run.budget);
            for (const q of mine) {
              if (state.has({ run: key, ...q })) continue;
              const base = { run: key, video, question: q.question };
              if (clipError) state.add({ ...base, error: clipError });
              else {
                try {
                  const a = await pipeline.answer(clip, q.question, {
                    maxNewTokens: settings.maxNewTokens,
                    prune: run,
                  });
                  state.add({
                    ...base,
                    answer: a.answer,
                    firstTokenMs: a.timings.firstTokenMs,
                    prefillMs: a.timings.projectMs + a.timings.prefillMs,
                    kvBytes: a.memory.kvUsedBytes,
                    visualTokens: a.visualTokens.layerAveraged,
                  });
                } catch (err) {
                  state.add({ ...base, error: (err as Error).message });
                }
              }
              progress.update(++done, total, `${video}: ${run.method} @ ${run.budget}`);
            }
          }
        }
      } finally {
        progress.stop();
        await pipeline.close();
      }

      const rows = tuneTable(runs, questions, state.records);
      if (budgetMb !== undefined) {
        const peaks = predictRunPeaks(checkpoint, pipeline.prepared, settings.runtime.ep, runs, {
          frames,
          maxNewTokens: settings.maxNewTokens,
          questions: questions.map((q) => q.question),
        });
        for (const [i, peak] of peaks.entries()) rows[i].predictedPeakBytes = peak;
      }
      const rec = recommend(rows, target, budgetMb === undefined ? undefined : budgetMb * 1024 * 1024);
      const markdown = tableMarkdown(rows, rec);
      process.stdout.write(markdown);
      const clips = new Set(questions.map((q) => q.video)).size;
      const title = `sieve tune: ${displayPath(checkpoint.dir)}, ${clips} clip(s), ${questions.length} question(s)`;
      const svg = tunePlotSvg(rows, rec.row, title);
      writeFileSync(join(flags.out, 'tune.md'), `# ${title}\n\n${markdown}`);
      writeFileSync(join(flags.out, 'tune.svg'), svg);
      await sharp(Buffer.from(svg)).png().toFile(join(flags.out, 'tune.png'));
      writeFileSync(
        join(flags.out, 'tune.json'),
        `${JSON.stringify(
          {
            model: displayPath(checkpoint.dir),
            frames,
            targetAgreement: target,
            rows,
            recommended: { method: rec.row.method, budget: rec.row.budget, reason: rec.reason },
            unreachable,
          },
          null,
          1,
        )}\n`,
      );
      process.stderr.write(`table, plot and state in ${displayPath(resolve(flags.out))}\n`);
      if (flags.write) {
        const set = writeRecommendation(flags.write, rec.row);
        process.stderr.write(`wrote ${rec.row.method} @ ${rec.row.budget} into ${flags.write} (${set.join(', ')})\n`);
      }
    });
}

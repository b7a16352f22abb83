import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { VlmPipeline } from '../engine/answer-pipeline.js';
import { evaluate, readSplit, summarise, type EvalSummary } from '../eval/evaluate.js';
import { parseInteger, progressReporter } from './cli-output.js';
import { defaultModelDir } from './default-model.js';

interface EvalFlags {
  data: string;
  split: string;
  n?: string;
  model?: string;
  json?: string;
  maxNewTokens: string;
  threads: string;
}

function printSummary(s: EvalSummary): void {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(`accuracy ${pct(s.accuracy)} (${s.correct}/${s.n})${s.errors ? `, ${s.errors} item(s) failed` : ''}`);
  for (const [type, t] of Object.entries(s.byType)) console.log(`  ${type.padEnd(10)} ${pct(t.accuracy).padStart(6)}  (${t.correct}/${t.n})`);
  console.log(`mean ms: ${Object.entries(s.meanMs).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(' · ')}`);
}

export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .description('accuracy of the full pipeline (MP4 decode → answer) on a synthetic split, overall and per question type')
    .option('--data <dir>', 'folder with <split>.jsonl and videos/ (from sieve synth)', 'data/synth')
    .option('--split <split>', 'train, val or test', 'test')
    .option('--n <n>', 'first N questions (default: all)')
    .option('--model <dir>', 'checkpoint folder (default: the shipped demo model)')
    .option('--json <file>', 'write every item and the summary as JSON')
    .option('--max-new-tokens <n>', 'longest answer', '6')
    .option('--threads <n>', 'inference threads (0 = one per core)', '0')
    .action(async (flags: EvalFlags) => {
      const { records, root } = readSplit(flags.data, flags.split);
      const n = flags.n === undefined ? records.length : Math.min(records.length, parseInteger(flags.n, '--n', 1));
      const maxNewTokens = parseInteger(flags.maxNewTokens, '--max-new-tokens', 1, 256);
      const pipeline = await VlmPipeline.open(resolve(flags.model ?? defaultModelDir()), {
        runtime: { ep: 'cpu', threads: parseInteger(flags.threads, '--threads', 0, 1024) },
      });
      const progress = progressReporter('eval');
      let correct = 0;
      try {
        const items = await evaluate(pipeline, records.slice(0, n), root, {
          maxNewTokens,
          onItem: (item, done, total) => {
            if (item.correct) correct++;
            if (item.error) process.stderr.write(`item ${item.index} (${item.video}): ${item.error}\n`);
            progress.update(done, total, `accuracy ${((100 * correct) / done).toFixed(1)}%`);
          },
        });
        progress.stop();
        const summary = summarise(items);
        printSummary(summary);
        if (flags.json) {
          mkdirSync(dirname(resolve(flags.json)), { recursive: true });
          writeFileSync(flags.json, `${JSON.stringify({ model: pipeline.checkpoint.dir, split: flags.split, summary, items }, null, 1)}\n`);
        }
      } finally {
        progress.stop();
        await pipeline.close();
      }
    });
}

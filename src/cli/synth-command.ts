/** `sieve synth`: writes a split of the synthetic video QA task (design §4). */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { encodeVideo } from '../media/video-encoder.js';
import type { EncodeVideo } from '../synth/dataset.js';
import { isSplit, SPLITS, writeSplit } from '../synth/dataset.js';
import type { QuestionType } from '../synth/vocabulary.js';
import { QUESTION_TYPES } from '../synth/vocabulary.js';
import { progressReporter } from './cli-output.js';

function parseCount(value: string, name: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a non-negative integer, got "${value}"`);
  return Number(value);
}

export interface SynthOptions {
  split: string;
  n: string;
  out: string;
  offset: string;
  labels?: boolean;
  types?: string;
  concurrency: string;
}

export async function runSynth(
  opts: SynthOptions,
  encode?: EncodeVideo,
  log: (s: string) => void = console.log,
): Promise<void> {
  if (!isSplit(opts.split)) throw new UsageError(`unknown split "${opts.split}"`, `use one of: ${SPLITS.join(', ')}`);
  const n = parseCount(opts.n, '--n');
  const offset = parseCount(opts.offset, '--offset');
  const concurrency = parseCount(opts.concurrency, '--concurrency');
  let types: QuestionType[] | undefined;
  if (opts.types) {
    types = opts.types.split(',').map((t) => t.trim()) as QuestionType[];
    const bad = types.filter((t) => !(QUESTION_TYPES as readonly string[]).includes(t));
    if (bad.length)
      throw new UsageError(`unknown question type(s): ${bad.join(', ')}`, `use: ${QUESTION_TYPES.join(', ')}`);
  }
  const progress = progressReporter('synth');
  const result = await writeSplit({
    split: opts.split,
    n,
    out: opts.out,
    offset,
    labels: opts.labels ?? false,
    ...(types ? { types } : {}),
    concurrency,
    encode: encode ?? ((frames, o) => encodeVideo(frames, o)),
    onClip: (done, total) => progress.update(done, total, 'clips rendered and encoded'),
  });
  progress.stop();
  log(`wrote ${result.clips} clips and ${result.questions} questions: ${result.jsonl}`);
}

export function registerSynthCommand(program: Command): void {
  program
    .command('synth')
    .description(
      'write a split of the synthetic video QA task: MP4 clips + <split>.jsonl {video, question, answer, type, seed}',
    )
    .requiredOption('--split <split>', `split: ${SPLITS.join(' | ')} (their seeds never overlap)`)
    .requiredOption('--n <clips>', 'number of clips (each gets one question of every type)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--offset <index>', 'index of the first clip inside the split', '0')
    .option('--types <list>', `comma-separated question types (default all: ${QUESTION_TYPES.join(',')})`)
    .option('--labels', 'also write per-frame object-id maps (labels/*.ids) for training')
    .option('--concurrency <n>', 'clips encoded at once', '2')
    .action(async (opts: SynthOptions) => {
      await runSynth(opts);
    });
}

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

function parseShift(value: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(value)) throw new UsageError(`--shift must be a number of pixels, got "${value}"`);
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
  version?: string;
  shift?: string;
  frames?: string;
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
  const version = (opts.version ?? '1') === '1' ? 1 : opts.version === '2' ? 2 : undefined;
  if (version === undefined) throw new UsageError(`unknown --version "${opts.version}"`, 'use 1 or 2');
  const variant = {
    version,
    ...(opts.shift === undefined ? {} : { shift: parseShift(opts.shift) }),
    ...(opts.frames === undefined ? {} : { frames: parseCount(opts.frames, '--frames') }),
  } as const;
  const progress = progressReporter('synth');
  const result = await writeSplit({
    split: opts.split,
    n,
    out: opts.out,
    offset,
    labels: opts.labels ?? false,
    ...(types ? { types } : {}),
    variant,
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
    .option('--version <v>', "generator: 1 (the shipped model's task) or 2 (any position, 4–32 frames, noise)", '1')
    .option('--shift <px>', 'v1: move every object by PX pixels right and down (a held-out split)')
    .option('--frames <n>', 'v1: show each clip in N frames (4–32) over the same duration (a held-out split)')
    .action(async (opts: SynthOptions) => {
      await runSynth(opts);
    });
}

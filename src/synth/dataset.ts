/**
 * Writes one split of the synthetic video QA task: encoded clips (MP4, through the injected
 * encoder — in the product that is src/media/video-encoder.ts), a JSONL of questions, a JSONL of scenes,
 * and optionally per-frame object-id maps for training. Splits draw seeds from disjoint ranges.
 */
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SieveError, UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';
import { questionsFor } from './questions.js';
import { renderScene } from './render.js';
import type { Scene } from './scene.js';
import { makeScene } from './scene.js';
import type { QuestionType } from './vocabulary.js';

export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** Seeds of split s are SPLIT_SEED_BASE[s] + i for 0 ≤ i < SPLIT_CAPACITY: never shared. */
export const SPLIT_SEED_BASE: Record<Split, number> = { train: 0, val: 1_000_000_000, test: 2_000_000_000 };
export const SPLIT_CAPACITY = 1_000_000_000;

export function isSplit(s: string): s is Split {
  return (SPLITS as readonly string[]).includes(s);
}

export function splitSeed(split: Split, i: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= SPLIT_CAPACITY) {
    throw new UsageError(`clip index ${i} is outside the ${split} split (0 … ${SPLIT_CAPACITY - 1})`);
  }
  return SPLIT_SEED_BASE[split] + i;
}

export function splitOfSeed(seed: number): Split {
  for (const s of SPLITS) {
    if (seed >= SPLIT_SEED_BASE[s] && seed < SPLIT_SEED_BASE[s] + SPLIT_CAPACITY) return s;
  }
  throw new RangeError(`seed ${seed} belongs to no split`);
}

export type EncodeVideo = (frames: Frame[], opts: { fps: number; out: string }) => Promise<unknown>;

/** One line of `<split>.jsonl`: what `sieve eval` reads. `video` is relative to the JSONL's folder. */
export interface QaRecord {
  video: string;
  question: string;
  answer: string;
  type: QuestionType;
  seed: number;
  split: Split;
  frames: number;
  fps: number;
}

export interface WriteSplitOptions {
  split: string;
  /** Number of clips; every clip gets one question of each type. */
  n: number;
  out: string;
  /** Index of the first clip inside the split's seed range. */
  offset?: number;
  /** Also write labels/<split>-<seed>.ids (uint8 object-id maps, frames·H·W) for training. */
  labels?: boolean;
  types?: readonly QuestionType[];
  encode: EncodeVideo;
  concurrency?: number;
  onClip?: (done: number, total: number) => void;
}

export interface WriteSplitResult {
  jsonl: string;
  scenes: string;
  clips: number;
  questions: number;
}

export function videoName(split: Split, seed: number): string {
  return `videos/${split}-${seed}.mp4`;
}

/** Records of one clip (no file is written). */
export function clipRecords(
  split: Split,
  seed: number,
  types?: readonly QuestionType[],
): { scene: Scene; records: QaRecord[] } {
  const scene = makeScene(seed);
  const records = questionsFor(scene, types).map((q) => ({
    video: videoName(split, seed),
    question: q.question,
    answer: q.answer,
    type: q.type,
    seed,
    split,
    frames: scene.frames,
    fps: scene.fps,
  }));
  return { scene, records };
}

/**
 * mkdir -p one level at a time (Node's recursive mkdir never settles on some pseudo file systems,
 * e.g. a path under /proc, so a bad --out would hang instead of failing).
 */
async function mkdirs(dir: string): Promise<void> {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    try {
      await stat(d);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(d);
      const parent = path.dirname(d);
      if (parent === d) break;
      d = parent;
    }
  }
  for (const m of missing.reverse()) {
    try {
      await mkdir(m);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

async function ensureWritableDir(dir: string): Promise<void> {
  try {
    await mkdirs(dir);
    await access(dir, fsConstants.W_OK);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new SieveError(
      `cannot write to output directory ${dir} (${reason})`,
      'choose a folder you can write to with --out',
    );
  }
}

export async function writeSplit(opts: WriteSplitOptions): Promise<WriteSplitResult> {
  if (!isSplit(opts.split)) {
    throw new UsageError(`unknown split "${opts.split}"`, `use one of: ${SPLITS.join(', ')}`);
  }
  const split = opts.split;
  if (!Number.isInteger(opts.n) || opts.n < 1) {
    throw new UsageError(`--n must be a positive integer (number of clips), got ${opts.n}`);
  }
  const offset = opts.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0 || offset + opts.n > SPLIT_CAPACITY) {
    throw new UsageError(`--offset ${offset} with --n ${opts.n} leaves the ${split} split's seed range`);
  }
  const out = path.resolve(opts.out);
  await ensureWritableDir(out);
  await ensureWritableDir(path.join(out, 'videos'));
  if (opts.labels) await ensureWritableDir(path.join(out, 'labels'));

  const concurrency = Math.max(1, opts.concurrency ?? 2);
  const perClip: { records: QaRecord[]; scene: Scene }[] = new Array(opts.n);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < opts.n) {
      const i = next++;
      const seed = splitSeed(split, offset + i);
      const { scene, records } = clipRecords(split, seed, opts.types);
      const { frames, idMaps } = renderScene(scene);
      await opts.encode(frames, { fps: scene.fps, out: path.join(out, videoName(split, seed)) });
      if (opts.labels) {
        const all = new Uint8Array(idMaps.length * scene.width * scene.height);
        for (const [f, m] of idMaps.entries()) all.set(m, f * m.length);
        await writeFile(path.join(out, 'labels', `${split}-${seed}.ids`), all);
      }
      perClip[i] = { records, scene };
      done++;
      opts.onClip?.(done, opts.n);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, opts.n) }, worker));

  const jsonl = path.join(out, `${split}.jsonl`);
  const scenes = path.join(out, `${split}.scenes.jsonl`);
  const records = perClip.flatMap((c) => c.records);
  await writeFile(jsonl, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
  await writeFile(scenes, `${perClip.map((c) => JSON.stringify(c.scene)).join('\n')}\n`);
  return { jsonl, scenes, clips: opts.n, questions: records.length };
}

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
import { makeSceneV2 } from './scene-v2.js';
import { retimeScene, shiftScene } from './scene-variants.js';
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

export type EncodeVideo = (
  frames: Frame[],
  opts: { fps: number; out: string; crf?: number; pixelFormat?: 'yuv444p' | 'yuv420p' },
) => Promise<unknown>;

/** Which generator and which held-out variant of its scenes (docs/demo-model.md). */
export interface SceneVariant {
  /** 1: the v1 task (8 frames, 64 px, objects on even pixels); 2: v2 (see scene-v2.ts). Default 1. */
  version?: 1 | 2;
  /** v1 only: every object moved by this many pixels right and down. */
  shift?: number;
  /** v1 only: the clip shown in this many frames over the same duration. */
  frames?: number;
}

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
  variant?: SceneVariant;
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

function checkVariant(v: SceneVariant): void {
  if (v.version !== undefined && v.version !== 1 && v.version !== 2) {
    throw new UsageError(`unknown generator version ${v.version}`, 'use --version 1 or 2');
  }
  if (v.version === 2 && (v.shift !== undefined || v.frames !== undefined)) {
    throw new UsageError(
      '--shift and --frames make held-out variants of the v1 task',
      'use them with --version 1 (v2 clips already vary position and frame count)',
    );
  }
  if (v.shift !== undefined && !(Number.isFinite(v.shift) && Math.abs(v.shift) <= 8)) {
    throw new UsageError(`--shift must be a number of pixels in [-8, 8], got ${v.shift}`);
  }
  if (v.frames !== undefined && !(Number.isInteger(v.frames) && v.frames >= 4 && v.frames <= 32)) {
    throw new UsageError(`--frames must be an integer from 4 to 32 (the vocabulary's frame markers), got ${v.frames}`);
  }
}

export function videoName(split: Split, seed: number): string {
  return `videos/${split}-${seed}.mp4`;
}

/** Records of one clip (no file is written). */
export function clipRecords(
  split: Split,
  seed: number,
  types?: readonly QuestionType[],
  variant: SceneVariant = {},
): { scene: Scene; records: QaRecord[] } {
  checkVariant(variant);
  // Questions come from the scene as generated, so the held-out variants keep them.
  const base = variant.version === 2 ? makeSceneV2(seed) : makeScene(seed);
  const scene = retimeScene(shiftScene(base, variant.shift ?? 0), variant.frames ?? base.frames);
  const records = questionsFor(base, types).map((q) => ({
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
  checkVariant(opts.variant ?? {});
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
      const { scene, records } = clipRecords(split, seed, opts.types, opts.variant);
      const { frames, idMaps } = renderScene(scene);
      await opts.encode(frames, { fps: scene.fps, out: path.join(out, videoName(split, seed)), ...scene.encoding });
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

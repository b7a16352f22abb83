import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import type { Answer, VlmPipeline } from '../engine/answer-pipeline.js';
import { SieveError, UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';
import { videoFrames } from '../media/sampler.js';
import type { QaRecord } from '../synth/dataset.js';

export interface EvalItemResult {
  index: number;
  video: string;
  question: string;
  type: string;
  expected: string;
  answer?: string;
  correct: boolean;
  error?: string;
  decodeMs?: number;
  answerResult?: Pick<Answer, 'timings' | 'visualTokens' | 'promptTokens' | 'memory'>;
}

export interface TypeAccuracy {
  n: number;
  correct: number;
  accuracy: number;
}

export interface EvalSummary {
  n: number;
  correct: number;
  errors: number;
  accuracy: number;
  byType: Record<string, TypeAccuracy>;
  /** Mean milliseconds per stage over the answered items. */
  meanMs: Record<string, number>;
}

/** Reads `<dir>/<split>.jsonl` as `sieve synth` writes it. */
export function readSplit(dir: string, split: string): { records: QaRecord[]; root: string } {
  const file = resolve(dir, `${split}.jsonl`);
  if (!existsSync(file)) {
    throw new UsageError(`no ${split} split at ${file}`, `write it first: sieve synth --split ${split} --n 70 --out ${dir}`);
  }
  const records: QaRecord[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let r: Partial<QaRecord>;
      try {
        r = JSON.parse(line) as Partial<QaRecord>;
      } catch {
        throw new SieveError(`${file}:${i + 1} is not valid JSON`, 'regenerate the split with sieve synth');
      }
      if (typeof r.video !== 'string' || typeof r.question !== 'string' || typeof r.answer !== 'string') {
        throw new SieveError(`${file}:${i + 1} lacks video, question or answer`, 'regenerate the split with sieve synth');
      }
      records.push(r as QaRecord);
    });
  return { records, root: dirname(file) };
}

export function normaliseAnswer(s: string): string {
  return s.toLowerCase().replace(/[.!?,]/g, ' ').replace(/\s+/g, ' ').trim();
}

export function summarise(items: readonly EvalItemResult[]): EvalSummary {
  const byType: Record<string, TypeAccuracy> = {};
  for (const it of items) {
    const t = (byType[it.type] ??= { n: 0, correct: 0, accuracy: 0 });
    t.n++;
    if (it.correct) t.correct++;
  }
  for (const t of Object.values(byType)) t.accuracy = t.correct / t.n;
  const answered = items.filter((it) => it.answerResult);
  const mean = (f: (it: EvalItemResult) => number) => (answered.length ? answered.reduce((a, it) => a + f(it), 0) / answered.length : 0);
  const correct = items.filter((it) => it.correct).length;
  return {
    n: items.length,
    correct,
    errors: items.filter((it) => it.error).length,
    accuracy: items.length ? correct / items.length : 0,
    byType,
    meanMs: {
      decode: mean((it) => it.decodeMs ?? 0),
      preprocess: mean((it) => it.answerResult!.timings.preprocessMs),
      vision: mean((it) => it.answerResult!.timings.visionMs),
      prefill: mean((it) => it.answerResult!.timings.projectMs + it.answerResult!.timings.prefillMs),
      generate: mean((it) => it.answerResult!.timings.generateMs),
      firstToken: mean((it) => it.answerResult!.timings.firstTokenMs),
    },
  };
}

/**
 * Answers every record through the full pipeline (MP4 decode → answer). A clip is decoded once for
 * all its questions; a clip that fails gives an error line for each of its questions and the run
 * goes on.
 */
export async function evaluate(
  pipeline: VlmPipeline,
  records: readonly QaRecord[],
  root: string,
  opts: { maxNewTokens: number; onItem?: (item: EvalItemResult, done: number, total: number) => void },
): Promise<EvalItemResult[]> {
  const results: EvalItemResult[] = [];
  let clip: { video: string; frames?: Frame[]; error?: string; decodeMs: number } | undefined;
  for (const [index, r] of records.entries()) {
    if (clip?.video !== r.video) {
      const t0 = performance.now();
      try {
        const frames = await lastValueFrom(videoFrames(join(root, r.video), { frames: r.frames }).pipe(toArray()));
        clip = { video: r.video, frames, decodeMs: performance.now() - t0 };
      } catch (err) {
        clip = { video: r.video, error: (err as Error).message, decodeMs: 0 };
      }
    }
    const item: EvalItemResult = { index, video: r.video, question: r.question, type: r.type, expected: r.answer, correct: false };
    if (clip.error) {
      item.error = clip.error;
    } else {
      try {
        const a = await pipeline.answer(clip.frames!, r.question, { maxNewTokens: opts.maxNewTokens });
        item.answer = a.answer;
        item.correct = normaliseAnswer(a.answer) === normaliseAnswer(r.answer);
        item.decodeMs = clip.decodeMs;
        item.answerResult = { timings: a.timings, visualTokens: a.visualTokens, promptTokens: a.promptTokens, memory: a.memory };
      } catch (err) {
        item.error = (err as Error).message;
      }
    }
    results.push(item);
    opts.onItem?.(item, results.length, records.length);
  }
  return results;
}

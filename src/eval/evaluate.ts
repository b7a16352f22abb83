import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import type { Answer, VlmPipeline } from '../engine/answer-pipeline.js';
import type { PruneRequest } from '../engine/visual-query.js';
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
  result?: Pick<Answer, 'timings' | 'visualTokens' | 'promptTokens' | 'memory'>;
}

export interface TypeAccuracy {
  n: number;
  correct: number;
  accuracy: number;
}

export interface EvalSummary {
  method: string;
  budget: number;
  n: number;
  correct: number;
  errors: number;
  accuracy: number;
  byType: Record<string, TypeAccuracy>;
  /** Mean milliseconds per stage over the answered items. */
  meanMs: {
    decode: number;
    preprocess: number;
    vision: number;
    prefill: number;
    generate: number;
    firstToken: number;
    pruneHost: number;
  };
  /** Mean visual tokens entering the LLM, and averaged over its layers. */
  meanTokens: { input: number; layerAveraged: number; inputFraction: number; layerAveragedFraction: number };
  /** Largest KV cache bytes in use after prefill + generation. */
  peakKvBytes: number;
}

/** Reads `<dir>/<split>.jsonl` as `sieve synth` writes it. */
export function readSplit(dir: string, split: string): { records: QaRecord[]; root: string } {
  const file = resolve(dir, `${split}.jsonl`);
  if (!existsSync(file)) {
    throw new UsageError(
      `no ${split} split at ${file}`,
      `write it first: sieve synth --split ${split} --n 70 --out ${dir}`,
    );
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
        throw new SieveError(
          `${file}:${i + 1} lacks video, question or answer`,
          'regenerate the split with sieve synth',
        );
      }
      records.push(r as QaRecord);
    });
  return { records, root: dirname(file) };
}

export function normaliseAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/[.!?,]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

export function summarise(run: PruneRequest, items: readonly EvalItemResult[]): EvalSummary {
  const byType: Record<string, TypeAccuracy> = {};
  for (const it of items) {
    let t = byType[it.type];
    if (!t) {
      t = { n: 0, correct: 0, accuracy: 0 };
      byType[it.type] = t;
    }
    t.n++;
    if (it.correct) t.correct++;
  }
  for (const t of Object.values(byType)) t.accuracy = t.correct / t.n;
  const answered = items.flatMap((it) => (it.result ? [{ ...it.result, decodeMs: it.decodeMs ?? 0 }] : []));
  const mean = (f: (r: (typeof answered)[number]) => number) =>
    answered.length ? answered.reduce((a, r) => a + f(r), 0) / answered.length : 0;
  const correct = items.filter((it) => it.correct).length;
  const all = (r: (typeof answered)[number]) => r.visualTokens.perFrame * r.visualTokens.keptPerFrame.length;
  return {
    method: run.method,
    budget: run.budget,
    n: items.length,
    correct,
    errors: items.filter((it) => it.error).length,
    accuracy: items.length ? correct / items.length : 0,
    byType,
    meanMs: {
      decode: mean((r) => r.decodeMs),
      preprocess: mean((r) => r.timings.preprocessMs),
      vision: mean((r) => r.timings.visionMs),
      prefill: mean((r) => r.timings.projectMs + r.timings.prefillMs),
      generate: mean((r) => r.timings.generateMs),
      firstToken: mean((r) => r.timings.firstTokenMs),
      pruneHost: mean((r) => r.timings.pruneMs),
    },
    meanTokens: {
      input: mean((r) => r.visualTokens.input),
      layerAveraged: mean((r) => r.visualTokens.layerAveraged),
      inputFraction: mean((r) => r.visualTokens.input / all(r)),
      layerAveragedFraction: mean((r) => r.visualTokens.layerAveraged / all(r)),
    },
    peakKvBytes: answered.reduce((a, r) => Math.max(a, r.memory.kvUsedBytes), 0),
  };
}

/**
 * Answers every record once per run (method × budget) through the full pipeline (MP4 decode →
 * answer). Each clip is decoded once for all its questions and runs; a clip or answer that fails
 * gives an error line for that item and the evaluation goes on.
 */
export async function evaluate(
  pipeline: VlmPipeline,
  records: readonly QaRecord[],
  root: string,
  runs: readonly PruneRequest[],
  opts: { maxNewTokens: number; onItem?: (run: number, item: EvalItemResult, done: number, total: number) => void },
): Promise<EvalItemResult[][]> {
  const results: EvalItemResult[][] = runs.map(() => []);
  const total = records.length * runs.length;
  let done = 0;
  const byVideo = new Map<string, number[]>();
  for (const [i, r] of records.entries()) {
    const indices = byVideo.get(r.video);
    if (indices) indices.push(i);
    else byVideo.set(r.video, [i]);
  }
  for (const [video, indices] of byVideo) {
    const t0 = performance.now();
    let frames: Frame[] = [];
    let clipError: string | undefined;
    try {
      frames = await lastValueFrom(
        videoFrames(join(root, video), { frames: records[indices[0]].frames }).pipe(toArray()),
      );
    } catch (err) {
      clipError = (err as Error).message;
    }
    const decodeMs = performance.now() - t0;
    for (const [k, run] of runs.entries()) {
      for (const index of indices) {
        const r = records[index];
        const item: EvalItemResult = {
          index,
          video,
          question: r.question,
          type: r.type,
          expected: r.answer,
          correct: false,
        };
        if (clipError) item.error = clipError;
        else {
          try {
            const a = await pipeline.answer(frames, r.question, { maxNewTokens: opts.maxNewTokens, prune: run });
            item.answer = a.answer;
            item.correct = normaliseAnswer(a.answer) === normaliseAnswer(r.answer);
            item.decodeMs = decodeMs;
            item.result = {
              timings: a.timings,
              visualTokens: a.visualTokens,
              promptTokens: a.promptTokens,
              memory: a.memory,
            };
          } catch (err) {
            item.error = (err as Error).message;
          }
        }
        results[k].push(item);
        opts.onItem?.(k, item, ++done, total);
      }
    }
  }
  for (const list of results) list.sort((a, b) => a.index - b.index);
  return results;
}

import { normaliseAnswer } from '../eval/evaluate.js';
import type { TuneQuestion } from './tune-inputs.js';
import { itemKey, runKey, type TuneRecord } from './tune-state.js';

export interface TuneRun {
  method: string;
  budget: number;
}

export interface TuneRow extends TuneRun {
  answered: number;
  errors: number;
  /** Share of answers equal (normalised) to the unpruned answer to the same clip and question. */
  agreement: number;
  /** Share of correct answers, when the questions carry labels. */
  accuracy?: number;
  meanFirstTokenMs: number;
  meanPrefillMs: number;
  peakKvBytes: number;
  meanVisualTokens: number;
  /** The memory planner's peak for one query of this configuration (set when tuning under a budget). */
  predictedPeakBytes?: number;
}

export interface Recommendation {
  row: TuneRow;
  /** Why this one: the cheapest that keeps the target, or the unpruned baseline when none does. */
  reason: string;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Per configuration: agreement with the unpruned answers (and accuracy with labels), time and memory. */
export function tuneTable(
  runs: readonly TuneRun[],
  questions: readonly TuneQuestion[],
  records: ReadonlyMap<string, TuneRecord>,
): TuneRow[] {
  const baseline = runKey('none', 1);
  const labelled = questions.filter((q) => q.answer !== undefined);
  return runs.map((run) => {
    const key = runKey(run.method, run.budget);
    const mine = questions.flatMap((q) => {
      const r = records.get(itemKey({ run: key, ...q }));
      return r ? [{ q, r, base: records.get(itemKey({ run: baseline, ...q })) }] : [];
    });
    const answered = mine.filter(({ r }) => r.answer !== undefined);
    const comparable = answered.filter(({ base }) => base?.answer !== undefined);
    const agree = comparable.filter(
      ({ r, base }) => normaliseAnswer(r.answer ?? '') === normaliseAnswer(base?.answer ?? ''),
    );
    const correct = answered.filter(
      ({ q, r }) => q.answer !== undefined && normaliseAnswer(r.answer ?? '') === normaliseAnswer(q.answer),
    );
    return {
      ...run,
      answered: answered.length,
      errors: mine.length - answered.length,
      agreement: comparable.length ? agree.length / comparable.length : 0,
      ...(labelled.length ? { accuracy: correct.length / labelled.length } : {}),
      meanFirstTokenMs: mean(answered.map(({ r }) => r.firstTokenMs ?? 0)),
      meanPrefillMs: mean(answered.map(({ r }) => r.prefillMs ?? 0)),
      peakKvBytes: Math.max(0, ...answered.map(({ r }) => r.kvBytes ?? 0)),
      meanVisualTokens: mean(answered.map(({ r }) => r.visualTokens ?? 0)),
    };
  });
}

/**
 * The configuration with the lowest mean time to first token among those whose agreement with the
 * unpruned answers reaches the target (answering every question) and, given a memory budget, whose
 * predicted peak fits it; else the unpruned baseline.
 */
export function recommend(rows: readonly TuneRow[], targetAgreement: number, budgetBytes?: number): Recommendation {
  const baseline = rows.find((r) => r.method === 'none');
  const fits = (r: TuneRow) =>
    budgetBytes === undefined || (r.predictedPeakBytes !== undefined && r.predictedPeakBytes <= budgetBytes);
  const agreeing = rows.filter(
    (r) => r.method !== 'none' && r.errors === 0 && r.answered > 0 && r.agreement >= targetAgreement,
  );
  const candidates = agreeing.filter(fits);
  const best = [...candidates].sort((a, b) => a.meanFirstTokenMs - b.meanFirstTokenMs)[0];
  const within = budgetBytes === undefined ? '' : ` and fit the memory budget`;
  if (best) {
    const speedup = baseline ? ` (${(baseline.meanFirstTokenMs / best.meanFirstTokenMs).toFixed(2)}× faster)` : '';
    return {
      row: best,
      reason:
        `the fastest to the first token${speedup} of the ${candidates.length} configuration(s) that agree with ` +
        `the unpruned answers at least ${(100 * targetAgreement).toFixed(0)} % of the time${within}`,
    };
  }
  const fallback = baseline ?? rows[0];
  const tooBig = agreeing.length > 0 ? `; ${agreeing.length} that do need more memory than the budget` : '';
  const baselineFits = baseline && !fits(baseline) ? '; the unpruned baseline does not fit it either' : '';
  return {
    row: fallback,
    reason:
      `no pruned configuration agrees with the unpruned answers ${(100 * targetAgreement).toFixed(0)} % of the ` +
      `time${within}${tooBig}${baselineFits}`,
  };
}

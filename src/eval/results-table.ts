import type { EvalSummary } from './evaluate.js';

const pct = (x: number) => (100 * x).toFixed(1);

/** The methods table of docs/results: one row per method × budget, every number from one run. */
export function resultsMarkdown(
  summaries: readonly EvalSummary[],
  meta: { model: string; split: string; questions: number; command: string; date: string; machine: string },
): string {
  const types = [...new Set(summaries.flatMap((s) => Object.keys(s.byType)))];
  const unpruned = summaries.find((s) => s.method === 'none' && s.budget === 1);
  const header = [
    'method',
    'budget π',
    'accuracy %',
    ...(unpruned ? ['of unpruned %'] : []),
    ...types.map((t) => `${t} %`),
    'prefill ms',
    ...(unpruned ? ['prefill vs unpruned'] : []),
    'first token ms',
    'layer-avg tokens (fraction)',
    'input tokens (fraction)',
    'peak KV KiB',
    'host pruning ms',
  ];
  const rows = summaries.map((s) => [
    s.method,
    s.budget === 1 ? '1' : s.budget.toFixed(3),
    pct(s.accuracy),
    ...(unpruned ? [pct(unpruned.accuracy ? s.accuracy / unpruned.accuracy : 0)] : []),
    ...types.map((t) => (s.byType[t] ? pct(s.byType[t].accuracy) : '–')),
    s.meanMs.prefill.toFixed(1),
    ...(unpruned ? [`${(s.meanMs.prefill / unpruned.meanMs.prefill).toFixed(2)}×`] : []),
    s.meanMs.firstToken.toFixed(1),
    `${s.meanTokens.layerAveraged.toFixed(1)} (${s.meanTokens.layerAveragedFraction.toFixed(3)})`,
    `${s.meanTokens.input.toFixed(1)} (${s.meanTokens.inputFraction.toFixed(3)})`,
    (s.peakKvBytes / 1024).toFixed(0),
    s.meanMs.pruneHost.toFixed(2),
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    `Model \`${meta.model}\`, ${meta.questions} questions of the ${meta.split} split, ${meta.date}, ${meta.machine}.`,
    `Regenerate with \`${meta.command}\`. Times are means per question; "host pruning" is the time spent ` +
      'in the pruning methods themselves (included in prefill).',
    '',
    line(header),
    line(header.map(() => '---')),
    ...rows.map(line),
    '',
  ].join('\n');
}

import type { PositionIds } from './decoder-runner.js';

/**
 * Where a prompt's rows sit: its token ids, which row holds each visual token, and every row's RoPE
 * position. Plain data, so it crosses to the inference worker. Visual token ids are unit-major
 * (unit u, token t → u·N + t) and ascend with their rows.
 */
export interface PromptLayout {
  /** Token ids; visual rows hold the placeholder id (their embeddings are replaced). */
  ids: number[];
  /** Prompt row of each visual token, by id. */
  visualRows: number[];
  /** Numbers per position: 1 for plain RoPE, 3 for M-RoPE. */
  axes: 1 | 3;
  /** Position ids of every prompt row, `axes` numbers per row. */
  positions: PositionIds;
  /** Position of the first generated token (the prompt length for plain RoPE). */
  nextPosition: number;
  /**
   * Rows whose embedding is the model's separator row (manifest.graphs.separator: OneVision's
   * image_newline) instead of their id's; like text rows they are never pruned.
   */
  separatorRows?: number[];
}

/** A layout with plain RoPE positions 0..n−1 (LLaVA, OneVision, Idefics3). */
export function sequentialLayout(ids: number[], visualRows: number[]): PromptLayout {
  return { ids, visualRows, axes: 1, positions: ids.map((_, i) => i), nextPosition: ids.length };
}

/** The position ids of some prompt rows, in the order given. */
export function positionsOfRows(layout: PromptLayout, rows: readonly number[]): PositionIds {
  const a = layout.axes;
  if (a === 1) return rows.map((r) => layout.positions[r]);
  const out = new Array<number>(rows.length * a);
  rows.forEach((r, i) => {
    for (let k = 0; k < a; k++) out[i * a + k] = layout.positions[r * a + k];
  });
  return out;
}

/** Rows after the last visual token (the question and the generation prompt). */
export function textTailRows(layout: PromptLayout): number {
  let last = -1;
  for (const r of layout.visualRows) if (r > last) last = r;
  return layout.ids.length - (last + 1);
}

import type { Slot } from '../prune/types.js';
import type { PositionIds } from './decoder-runner.js';
import { type PromptLayout, positionsOfRows } from './prompt-layout.js';

/** Rows of some width, each named by an original visual token id, ascending. */
export interface IdRows {
  ids: number[];
  rows: Float32Array;
  width: number;
}

/**
 * Turns a stage's slots into the next stage's rows: 'keep' copies the member's row, 'mean' averages
 * the members, 'anchor_plus_mean' adds the anchor's row to the members' mean. Each slot's row is named
 * by its positionOf id; the result is in ascending id (= prompt) order.
 */
export function applySlots(input: IdRows, slots: readonly Slot[]): IdRows {
  const w = input.width;
  const src = input.rows;
  // Typed-array row offsets and `dst.set(src.subarray(…), offset)`: a Map lookup and a subarray of the
  // destination per row made this 20–40× slower at thousands of rows.
  const rowOf = new Int32Array(Math.max(-1, ...input.ids) + 1).fill(-1);
  for (let i = 0; i < input.ids.length; i++) rowOf[input.ids[i]] = i;
  const start = (id: number) => {
    const i = id < rowOf.length ? rowOf[id] : -1;
    if (i < 0) throw new Error(`a pruning slot names token ${id}, which is not alive at this stage`);
    return i * w;
  };
  const ordered = [...slots].sort((a, b) => a.positionOf - b.positionOf);
  const out = new Float32Array(ordered.length * w);
  ordered.forEach((slot, k) => {
    if (k > 0 && ordered[k - 1].positionOf === slot.positionOf)
      throw new Error(`two pruning slots take the position of token ${slot.positionOf}`);
    const o = k * w;
    if (slot.mode === 'keep') {
      const s = start(slot.members[0]);
      out.set(src.subarray(s, s + w), o);
      return;
    }
    for (const m of slot.members) {
      const s = start(m);
      for (let j = 0; j < w; j++) out[o + j] += src[s + j];
    }
    const inv = 1 / slot.members.length;
    for (let j = 0; j < w; j++) out[o + j] *= inv;
    if (slot.mode === 'anchor_plus_mean') {
      const s = start(slot.anchor ?? slot.members[0]);
      for (let j = 0; j < w; j++) out[o + j] += src[s + j];
    }
  });
  return { ids: ordered.map((s) => s.positionOf), rows: out, width: w };
}

/** The prompt as the decoder sees it: rows, where each came from, and which visual token each row is. */
export interface PromptRows {
  hidden: Float32Array;
  /** Row of the unpruned prompt each row is. */
  promptRows: number[];
  /** Their position ids (keep-original: gaps after pruning are expected). */
  positions: PositionIds;
  /** Original visual token id per row, −1 for text. */
  visualIds: number[];
}

interface TextRow {
  row: number;
  /** The row's values: from[at … at + d). */
  from: Float32Array;
  at: number;
}

/** Text rows and visual rows (both already in prompt order: ids ascend) merged in prompt order. */
function interleave(text: readonly TextRow[], visual: IdRows, layout: PromptLayout): PromptRows {
  const d = visual.width;
  const rows = text.length + visual.ids.length;
  const hidden = new Float32Array(rows * d);
  const promptRows = new Array<number>(rows);
  const visualIds = new Array<number>(rows);
  let t = 0;
  let v = 0;
  for (let i = 0; i < rows; i++) {
    const vr = v < visual.ids.length ? layout.visualRows[visual.ids[v]] : Infinity;
    if (t < text.length && text[t].row < vr) {
      hidden.set(text[t].from.subarray(text[t].at, text[t].at + d), i * d);
      promptRows[i] = text[t++].row;
      visualIds[i] = -1;
    } else {
      hidden.set(visual.rows.subarray(v * d, (v + 1) * d), i * d);
      promptRows[i] = vr;
      visualIds[i] = visual.ids[v++];
    }
  }
  return { hidden, promptRows, positions: positionsOfRows(layout, promptRows), visualIds };
}

/**
 * Text embeddings [promptLength, d] with the surviving visual rows put back at their original
 * rows: pruned rows are simply absent (keep-original positions, methods.md §0).
 */
export function assemblePrompt(textEmbeddings: Float32Array, layout: PromptLayout, visual: IdRows): PromptRows {
  const d = visual.width;
  const isVisual = new Uint8Array(layout.ids.length);
  for (const r of layout.visualRows) isVisual[r] = 1;
  const text: TextRow[] = [];
  for (let row = 0; row < layout.ids.length; row++)
    if (!isVisual[row]) text.push({ row, from: textEmbeddings, at: row * d });
  return interleave(text, visual, layout);
}

/** Replaces the visual rows of a decoder state by the slots' rows; text rows stay as they are. */
export function pruneVisualRows(
  state: PromptRows,
  slots: readonly Slot[],
  layout: PromptLayout,
  d: number,
): PromptRows {
  const text: TextRow[] = [];
  const visual: IdRows = {
    ids: [],
    rows: new Float32Array(state.visualIds.filter((id) => id >= 0).length * d),
    width: d,
  };
  state.visualIds.forEach((id, i) => {
    if (id < 0) text.push({ row: state.promptRows[i], from: state.hidden, at: i * d });
    else visual.rows.set(state.hidden.subarray(i * d, (i + 1) * d), visual.ids.push(id) * d - d);
  });
  return interleave(text, applySlots(visual, slots), layout);
}

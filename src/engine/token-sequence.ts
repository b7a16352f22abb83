import type { Slot } from '../prune/types.js';
import type { ImageSpan } from './prompt.js';

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
  const rowOf = new Map<number, number>();
  for (const [i, id] of input.ids.entries()) rowOf.set(id, i);
  const w = input.width;
  const row = (id: number) => {
    const i = rowOf.get(id);
    if (i === undefined) throw new Error(`a pruning slot names token ${id}, which is not alive at this stage`);
    return input.rows.subarray(i * w, (i + 1) * w);
  };
  const ordered = [...slots].sort((a, b) => a.positionOf - b.positionOf);
  const out = new Float32Array(ordered.length * w);
  ordered.forEach((slot, k) => {
    if (k > 0 && ordered[k - 1].positionOf === slot.positionOf)
      throw new Error(`two pruning slots take the position of token ${slot.positionOf}`);
    const dst = out.subarray(k * w, (k + 1) * w);
    if (slot.mode === 'keep') {
      dst.set(row(slot.members[0]));
      return;
    }
    for (const m of slot.members) {
      const src = row(m);
      for (let j = 0; j < w; j++) dst[j] += src[j];
    }
    const inv = 1 / slot.members.length;
    for (let j = 0; j < w; j++) dst[j] *= inv;
    if (slot.mode === 'anchor_plus_mean') {
      const anchor = row(slot.anchor ?? slot.members[0]);
      for (let j = 0; j < w; j++) dst[j] += anchor[j];
    }
  });
  return { ids: ordered.map((s) => s.positionOf), rows: out, width: w };
}

/** The prompt as the decoder sees it: rows, their RoPE positions, and which visual token each row is. */
export interface PromptRows {
  hidden: Float32Array;
  positions: number[];
  /** Original visual token id per row, −1 for text. */
  visualIds: number[];
}

/** Prompt position of visual token `id` (frame f = id div N sits in span f). */
export function visualPosition(spans: readonly ImageSpan[], tokensPerFrame: number, id: number): number {
  const span = spans[Math.floor(id / tokensPerFrame)];
  return span.start + (id % tokensPerFrame);
}

interface TextRow {
  position: number;
  src: Float32Array;
}

/** Text rows and visual rows (both already in position order: ids ascend) merged in position order. */
function interleave(
  text: readonly TextRow[],
  visual: IdRows,
  spans: readonly ImageSpan[],
  tokensPerFrame: number,
): PromptRows {
  const d = visual.width;
  const rows = text.length + visual.ids.length;
  const hidden = new Float32Array(rows * d);
  const positions = new Array<number>(rows);
  const visualIds = new Array<number>(rows);
  let t = 0;
  let v = 0;
  for (let i = 0; i < rows; i++) {
    const vp = v < visual.ids.length ? visualPosition(spans, tokensPerFrame, visual.ids[v]) : Infinity;
    if (t < text.length && text[t].position < vp) {
      hidden.set(text[t].src, i * d);
      positions[i] = text[t++].position;
      visualIds[i] = -1;
    } else {
      hidden.set(visual.rows.subarray(v * d, (v + 1) * d), i * d);
      positions[i] = vp;
      visualIds[i] = visual.ids[v++];
    }
  }
  return { hidden, positions, visualIds };
}

/**
 * Text embeddings [promptLength, d] with the surviving visual rows put back at their original
 * positions: pruned positions are simply absent (keep-original positions, methods.md §0).
 */
export function assemblePrompt(
  textEmbeddings: Float32Array,
  promptLength: number,
  spans: readonly ImageSpan[],
  tokensPerFrame: number,
  visual: IdRows,
): PromptRows {
  const d = visual.width;
  const isVisual = new Uint8Array(promptLength);
  for (const s of spans) isVisual.fill(1, s.start, s.start + s.length);
  const text: TextRow[] = [];
  for (let p = 0; p < promptLength; p++)
    if (!isVisual[p]) text.push({ position: p, src: textEmbeddings.subarray(p * d, (p + 1) * d) });
  return interleave(text, visual, spans, tokensPerFrame);
}

/** Replaces the visual rows of a decoder state by the slots' rows; text rows stay as they are. */
export function pruneVisualRows(
  state: PromptRows,
  slots: readonly Slot[],
  spans: readonly ImageSpan[],
  tokensPerFrame: number,
  d: number,
): PromptRows {
  const text: TextRow[] = [];
  const visual: IdRows = {
    ids: [],
    rows: new Float32Array(state.visualIds.filter((id) => id >= 0).length * d),
    width: d,
  };
  state.visualIds.forEach((id, i) => {
    const src = state.hidden.subarray(i * d, (i + 1) * d);
    if (id < 0) text.push({ position: state.positions[i], src });
    else visual.rows.set(src, visual.ids.push(id) * d - d);
  });
  return interleave(text, applySlots(visual, slots), spans, tokensPerFrame);
}

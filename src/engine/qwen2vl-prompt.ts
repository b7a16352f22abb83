/**
 * Qwen2-VL's prompt around the visual tokens, tokenizer-independent: Qwen2VLProcessor's expansion of each
 * `<|image_pad|>` / `<|video_pad|>` the chat template writes (inside `<|vision_start|>…<|vision_end|>`)
 * into one pad per LLM token, and get_rope_index's 3-D position ids with the rope delta for decoding.
 */
import { ModelError } from '../errors.js';
import type { PromptLayout } from './prompt-layout.js';

export interface Qwen2VlPromptTokens {
  visionStartTokenId: number;
  visionEndTokenId: number;
  imageTokenId: number;
  videoTokenId: number;
}

/** One image or video as the vision graph encodes it: units (temporal slices) of rows × cols LLM tokens. */
export interface Qwen2VlVisual {
  kind: 'image' | 'video';
  units: number;
  rows: number;
  cols: number;
}

export interface Qwen2VlVisualSpan extends Qwen2VlVisual {
  /** Row of the visual's first pad; its units·rows·cols pads follow, unit by unit, row-major. */
  start: number;
}

/**
 * The layout with M-RoPE positions ([t, h, w] per row); visual token ids run over the visuals in order, each
 * visual's unit by unit, row-major. `nextPosition` is the first generated token's (on all three axes).
 */
export interface Qwen2VlPrompt extends PromptLayout {
  axes: 3;
  /** get_rope_index's rope_deltas: (largest position + 1) − prompt length. */
  ropeDelta: number;
  spans: Qwen2VlVisualSpan[];
}

/** The ids the chat template writes for one visual: `<|vision_start|><|image_pad|><|vision_end|>` (or video). */
export function qwen2VlVisualPlaceholder(kind: Qwen2VlVisual['kind'], tokens: Qwen2VlPromptTokens): number[] {
  return [tokens.visionStartTokenId, padId(kind, tokens), tokens.visionEndTokenId];
}

/**
 * Expands each pad of `templateIds` (one per visual, in order) to the visual's tokens and numbers every
 * row as get_rope_index does: text continues one past the largest position so far on all three axes; a
 * visual's token (unit u, row r, col c) gets (s + u, s + r, s + c), s being the next text position.
 */
export function qwen2VlPrompt(
  templateIds: readonly number[],
  visuals: readonly Qwen2VlVisual[],
  tokens: Qwen2VlPromptTokens,
): Qwen2VlPrompt {
  const ids: number[] = [];
  const visualRows: number[] = [];
  const positions: number[] = [];
  const spans: Qwen2VlVisualSpan[] = [];
  let next = 0;
  for (const id of templateIds) {
    if (id !== tokens.imageTokenId && id !== tokens.videoTokenId) {
      ids.push(id);
      positions.push(next, next, next);
      next++;
      continue;
    }
    const visual = visuals[spans.length];
    if (!visual || padId(visual.kind, tokens) !== id) {
      throw new ModelError(
        `the prompt's ${spans.length + 1}. vision pad is ${id === tokens.imageTokenId ? 'an image' : 'a video'} ` +
          `pad, but the ${spans.length + 1}. visual is ${visual ? `a ${visual.kind}` : 'missing'}`,
        'the chat template must write one <|vision_start|> pad <|vision_end|> per image or video, in order',
      );
    }
    spans.push({ ...visual, start: ids.length });
    for (let u = 0; u < visual.units; u++)
      for (let r = 0; r < visual.rows; r++)
        for (let c = 0; c < visual.cols; c++) {
          visualRows.push(ids.length);
          ids.push(id);
          positions.push(next + u, next + r, next + c);
        }
    next += Math.max(visual.units, visual.rows, visual.cols);
  }
  if (spans.length !== visuals.length) {
    throw new ModelError(
      `the prompt has ${spans.length} vision pads for ${visuals.length} images or videos`,
      'the chat template must write one <|vision_start|> pad <|vision_end|> per image or video',
    );
  }
  return { ids, visualRows, axes: 3, positions, nextPosition: next, ropeDelta: next - ids.length, spans };
}

/** The position (the same on all three axes) of the k-th generated token fed back, counting from 0. */
export function qwen2VlDecodePosition(promptLength: number, ropeDelta: number, k: number): number {
  return promptLength + k + ropeDelta;
}

function padId(kind: Qwen2VlVisual['kind'], tokens: Qwen2VlPromptTokens): number {
  return kind === 'image' ? tokens.imageTokenId : tokens.videoTokenId;
}

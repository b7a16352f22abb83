import { ModelError } from '../errors.js';
import type { VisualUnit } from '../vision/onevision-processor.js';
import { type PromptLayout, sequentialLayout } from './prompt-layout.js';

/** One image (its base tile and tile grid) or one video (a unit per frame), in prompt order. */
export interface OnevisionMedia {
  kind: 'image' | 'video';
  units: readonly VisualUnit[];
}

export interface OnevisionPlaceholders {
  imageTokenId: number;
  videoTokenId: number;
}

export interface OnevisionPrompt {
  /**
   * ids: input_ids as LlavaOnevisionProcessor makes them, each media's placeholder repeated once per
   * row it stands for (its tokens and its image_newline rows). visualRows: the row of each visual
   * token, numbered over the media's units in order, each unit row-major (units differ in size: an
   * image's base tile and its grid).
   */
  layout: PromptLayout;
  /** Rows that take the image_newline embedding, ascending. */
  newlineRows: number[];
}

/**
 * Expands the placeholders of a rendered prompt (one `<image>` or `<video>` id per media, in order)
 * into the rows LlavaOnevisionModel puts there. An image: its base tile's tokens, then its grid's
 * tokens row by row, each row followed by an image_newline. A video: every frame's tokens, then one
 * image_newline (transformers 4.46 adds one per video, not one per frame). Positions are plain 0, 1, 2…
 */
export function layoutOnevisionPrompt(
  rendered: readonly number[],
  media: readonly OnevisionMedia[],
  placeholders: OnevisionPlaceholders,
): OnevisionPrompt {
  const idOf = (m: OnevisionMedia) => (m.kind === 'image' ? placeholders.imageTokenId : placeholders.videoTokenId);
  const found = rendered.filter((id) => id === placeholders.imageTokenId || id === placeholders.videoTokenId);
  const expected = media.map(idOf);
  if (found.join() !== expected.join()) {
    throw new ModelError(
      `the prompt has the placeholders [${found.join(', ')}] where its media need [${expected.join(', ')}]`,
      'the chat template must print one <image> per image and one <video> per video, in the order given',
    );
  }
  const ids: number[] = [];
  const visualRows: number[] = [];
  const newlineRows: number[] = [];
  let next = 0;
  for (const id of rendered) {
    if (id !== placeholders.imageTokenId && id !== placeholders.videoTokenId) {
      ids.push(id);
      continue;
    }
    const m = media[next++];
    const place = () => ids.push(id) - 1;
    for (const u of m.units) {
      for (let r = 0; r < u.rows; r++) {
        for (let c = 0; c < u.cols; c++) visualRows.push(place());
        if (u.newlineAfterRow) newlineRows.push(place());
      }
    }
    if (m.kind === 'video') newlineRows.push(place());
  }
  return { layout: sequentialLayout(ids, visualRows), newlineRows };
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { qwen2VlDecodePosition, qwen2VlPrompt, qwen2VlVisualPlaceholder } from '../../src/engine/qwen2vl-prompt.js';
import { ModelError } from '../../src/errors.js';

const TOKENS = { visionStartTokenId: 120, visionEndTokenId: 121, imageTokenId: 123, videoTokenId: 124 };
const image = qwen2VlVisualPlaceholder('image', TOKENS);
const video = qwen2VlVisualPlaceholder('video', TOKENS);

/** [t, h, w] triples of a flat position list. */
const triples = (flat: number[]) => Array.from({ length: flat.length / 3 }, (_, i) => flat.slice(3 * i, 3 * i + 3));

describe('qwen2VlPrompt', () => {
  it('numbers an image then a video as get_rope_index does, text resuming past the largest position', () => {
    const prompt = qwen2VlPrompt(
      [1, ...image, 7, ...video, 8],
      [
        { kind: 'image', units: 1, rows: 2, cols: 3 },
        { kind: 'video', units: 3, rows: 1, cols: 2 },
      ],
      TOKENS,
    );
    assert.deepEqual(
      prompt.ids,
      [1, 120, 123, 123, 123, 123, 123, 123, 121, 7, 120, 124, 124, 124, 124, 124, 124, 121, 8],
    );
    assert.deepEqual(triples(prompt.positions), [
      [0, 0, 0],
      [1, 1, 1],
      [2, 2, 2],
      [2, 2, 3],
      [2, 2, 4],
      [2, 3, 2],
      [2, 3, 3],
      [2, 3, 4],
      [5, 5, 5],
      [6, 6, 6],
      [7, 7, 7],
      [8, 8, 8],
      [8, 8, 9],
      [9, 8, 8],
      [9, 8, 9],
      [10, 8, 8],
      [10, 8, 9],
      [11, 11, 11],
      [12, 12, 12],
    ]);
    assert.equal(prompt.ropeDelta, 13 - 19);
    assert.equal(prompt.nextPosition, 13);
    assert.deepEqual(prompt.visualRows, [2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16]);
    assert.deepEqual(
      prompt.spans.map((s) => s.start),
      [2, 11],
    );
    assert.equal(qwen2VlDecodePosition(prompt.ids.length, prompt.ropeDelta, 0), 13);
  });

  it('is plain 1-D numbering on all three axes without visuals', () => {
    const prompt = qwen2VlPrompt([5, 6, 7], [], TOKENS);
    assert.deepEqual(triples(prompt.positions), [
      [0, 0, 0],
      [1, 1, 1],
      [2, 2, 2],
    ]);
    assert.equal(prompt.ropeDelta, 0);
  });

  it('refuses pads that do not match the visuals', () => {
    assert.throws(() => qwen2VlPrompt([...image], [{ kind: 'video', units: 1, rows: 1, cols: 1 }], TOKENS), ModelError);
    assert.throws(() => qwen2VlPrompt([...image], [], TOKENS), ModelError);
    assert.throws(() => qwen2VlPrompt([1], [{ kind: 'image', units: 1, rows: 1, cols: 1 }], TOKENS), ModelError);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { layoutOnevisionPrompt } from '../../src/engine/onevision-prompt.js';
import { ModelError } from '../../src/errors.js';

const IDS = { imageTokenId: 126, videoTokenId: 127 };
const IMAGE = 126;
const VIDEO = 127;
const unit = (rows: number, cols: number, newlineAfterRow = false) => ({ rows, cols, newlineAfterRow });

describe('layoutOnevisionPrompt', () => {
  it('expands an image: base tile, then grid rows each followed by an image_newline', () => {
    const { layout, newlineRows } = layoutOnevisionPrompt(
      [1, 20, IMAGE, 21, 2],
      [{ kind: 'image', units: [unit(2, 2), unit(2, 3, true)] }],
      IDS,
    );
    // 4 base tokens at 2..5, grid row 0 at 6..8 then newline 9, row 1 at 10..12 then newline 13.
    assert.deepEqual(layout.ids, [1, 20, ...new Array(12).fill(IMAGE), 21, 2]);
    assert.deepEqual(layout.visualRows, [2, 3, 4, 5, 6, 7, 8, 10, 11, 12]);
    assert.deepEqual(newlineRows, [9, 13]);
    assert.deepEqual(layout.positions, [...layout.ids.keys()]);
    assert.equal(layout.nextPosition, 16);
    assert.equal(layout.axes, 1);
  });

  it('gives a video one image_newline after its last frame, and keeps several media in order', () => {
    const { layout, newlineRows } = layoutOnevisionPrompt(
      [1, VIDEO, 21, IMAGE, 2],
      [
        { kind: 'video', units: [unit(1, 2), unit(1, 2), unit(1, 2)] },
        { kind: 'image', units: [unit(1, 1), unit(1, 1, true)] },
      ],
      IDS,
    );
    assert.deepEqual(layout.ids, [1, ...new Array(7).fill(VIDEO), 21, IMAGE, IMAGE, IMAGE, 2]);
    assert.deepEqual(layout.visualRows, [1, 2, 3, 4, 5, 6, 9, 10]);
    assert.deepEqual(newlineRows, [7, 11]);
  });

  it('refuses placeholders that do not match the media', () => {
    const media = [{ kind: 'image' as const, units: [unit(1, 1)] }];
    for (const rendered of [[1, 2], [IMAGE, IMAGE], [VIDEO]]) {
      assert.throws(() => layoutOnevisionPrompt(rendered, media, IDS), ModelError);
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { durationString, idefics3Layout, idefics3Prompt, type PromptPiece } from '../../src/engine/idefics3-prompt.js';
import { cardinalWords } from '../../src/engine/number-words.js';

/** Pieces as one string, `<image>`×n written out, as the processor's prompt string reads. */
const render = (pieces: readonly PromptPiece[]) =>
  pieces.map((p) => ('text' in p ? p.text : 'special' in p ? p.special : '<image>'.repeat(p.tokens))).join('');

describe('Idefics3 / SmolVLM prompt layout', () => {
  it('writes a split image as get_image_prompt_string does, the two newlines before the global image as one piece', () => {
    const pieces = idefics3Prompt({ kind: 'images', splits: [{ rows: 1, cols: 2 }] }, 'Why?', 2);
    const tile = (r: number, c: number) => `<fake_token_around_image><row_${r}_col_${c}><image><image>`;
    assert.equal(
      render(pieces),
      `<|im_start|>User:${tile(1, 1)}${tile(1, 2)}\n\n<fake_token_around_image><global-img><image><image>` +
        '<fake_token_around_image>Why?<end_of_utterance>\nAssistant:',
    );
    assert.ok(pieces.some((p) => 'text' in p && p.text === '\n\n'));
  });

  it('writes an unsplit image as the single-image string, and no image at all with ": "', () => {
    const single = idefics3Prompt({ kind: 'images', splits: [{ rows: 0, cols: 0 }] }, 'Q', 1);
    assert.equal(
      render(single),
      '<|im_start|>User:<fake_token_around_image><global-img><image><fake_token_around_image>Q<end_of_utterance>' +
        '\nAssistant:',
    );
    assert.equal(
      render(idefics3Prompt({ kind: 'images', splits: [] }, 'Hi', 1)),
      '<|im_start|>User: Hi<end_of_utterance>\nAssistant:',
    );
  });

  it("writes SmolVLM2's video layout with num2words, H:MM:SS and MM:SS frame times", () => {
    const pieces = idefics3Prompt({ kind: 'video', timestampsS: [0, 61.9, 3725.5], durationS: 3726.8 }, 'Q', 1);
    const frame = (t: string) =>
      `\nFrame from ${t}:<fake_token_around_image><global-img><image><fake_token_around_image>`;
    assert.equal(
      render(pieces),
      '<|im_start|>User: You are provided the following series of three frames from a 1:02:06 [H:MM:SS] video.\n' +
        `${frame('00:00')}${frame('01:01')}${frame('62:05')}\n\nQ<end_of_utterance>\nAssistant:`,
    );
    assert.deepEqual(
      pieces.flatMap((p) => ('unit' in p ? [p.unit] : [])),
      [0, 1, 2],
    );
  });

  it('maps pieces to ids and puts visual token u·N + t in the t-th row of unit u', () => {
    const pieces = idefics3Prompt({ kind: 'images', splits: [{ rows: 1, cols: 1 }] }, 'x', 3);
    const specials = new Map<string, number>();
    const layout = idefics3Layout(
      pieces,
      (text) => [...text].map((ch) => 1000 + ch.charCodeAt(0)),
      (token) => {
        if (!specials.has(token)) specials.set(token, specials.size + 1);
        return specials.get(token) ?? 0;
      },
      99,
    );
    assert.equal(layout.visualRows.length, 6);
    assert.ok(layout.visualRows.every((row) => layout.ids[row] === 99));
    assert.deepEqual(
      layout.ids.flatMap((id, row) => (id === 99 ? [row] : [])),
      layout.visualRows,
    );
    // Tile 1,1 comes first; between it and the global image: `\n\n` (two ids here), the fake and global tokens.
    assert.equal(layout.visualRows[3] - layout.visualRows[2], 1 + 2 + 1 + 1);
    assert.equal(layout.axes, 1);
    assert.equal(layout.nextPosition, layout.ids.length);
  });
});

describe('num2words and timedelta as the SmolVLM processor uses them', () => {
  it('writes English cardinals like num2words', () => {
    const cases: [number, string][] = [
      [0, 'zero'],
      [4, 'four'],
      [13, 'thirteen'],
      [21, 'twenty-one'],
      [40, 'forty'],
      [64, 'sixty-four'],
      [100, 'one hundred'],
      [105, 'one hundred and five'],
      [999, 'nine hundred and ninety-nine'],
      [1000, 'one thousand'],
      [1024, 'one thousand and twenty-four'],
      [2300, 'two thousand, three hundred'],
      [101_000, 'one hundred and one thousand'],
    ];
    for (const [n, words] of cases) assert.equal(cardinalWords(n), words);
    assert.throws(() => cardinalWords(-1), RangeError);
  });

  it('writes durations as str(timedelta(seconds=int(s)))', () => {
    assert.equal(durationString(4), '0:00:04');
    assert.equal(durationString(59.9), '0:00:59');
    assert.equal(durationString(3600), '1:00:00');
    assert.equal(durationString(86400 + 61), '1 day, 0:01:01');
    assert.equal(durationString(2 * 86400), '2 days, 0:00:00');
  });
});

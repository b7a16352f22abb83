import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PromptLayout, sequentialLayout } from '../../src/engine/prompt-layout.js';
import { applySlots, assemblePrompt, pruneVisualRows } from '../../src/engine/token-sequence.js';

const rows = (...values: number[][]) => Float32Array.from(values.flat());

describe('token sequences under pruning', () => {
  it('applies keep, mean and anchor+mean slots, named and ordered by their position token', () => {
    const input = { ids: [0, 1, 2, 3], rows: rows([1, 10], [2, 20], [3, 30], [4, 40]), width: 2 };
    const out = applySlots(input, [
      { members: [1, 2, 3], mode: 'mean', positionOf: 2 },
      { members: [0], mode: 'keep', positionOf: 0 },
    ]);
    assert.deepEqual(out.ids, [0, 2]);
    assert.deepEqual([...out.rows], [1, 10, 3, 30]);
    const anchored = applySlots(input, [{ members: [0, 1], mode: 'anchor_plus_mean', anchor: 1, positionOf: 1 }]);
    assert.deepEqual([...anchored.rows], [2 + 1.5, 20 + 15]);
    assert.throws(() => applySlots(input, [{ members: [9], mode: 'keep', positionOf: 9 }]), /token 9/);
  });

  it('puts surviving visual rows back at their original positions between the text rows', () => {
    // prompt: t0 [img f0: 2 tokens] t3 [img f1: 2 tokens] t6
    const promptLength = 7;
    const layout = sequentialLayout([0, 9, 9, 3, 9, 9, 6], [1, 2, 4, 5]);
    const text = rows(...Array.from({ length: promptLength }, (_, p) => [p, -p]));
    const visual = { ids: [1, 2], rows: rows([101, 101], [102, 102]), width: 2 };
    const p = assemblePrompt(text, layout, visual);
    assert.deepEqual(p.positions, [0, 2, 3, 4, 6]);
    assert.deepEqual(p.visualIds, [-1, 1, -1, 2, -1]);
    assert.deepEqual([...p.hidden], [0, -0, 101, 101, 3, -3, 102, 102, 6, -6]);

    const pruned = pruneVisualRows(p, [{ members: [1, 2], mode: 'mean', positionOf: 2 }], layout, 2);
    assert.deepEqual(pruned.positions, [0, 3, 4, 6]);
    assert.deepEqual(pruned.visualIds, [-1, -1, 2, -1]);
    assert.deepEqual([...pruned.hidden.subarray(4, 6)], [101.5, 101.5]);
  });

  it('with M-RoPE each surviving row keeps its own 3-D position', () => {
    // t0 [2×1 grid: two visual tokens] t3; visual rows at (1,1,1) and (1,2,1); text after resumes at 3.
    const layout: PromptLayout = {
      ids: [0, 9, 9, 3],
      visualRows: [1, 2],
      axes: 3,
      positions: [0, 0, 0, 1, 1, 1, 1, 2, 1, 3, 3, 3],
      nextPosition: 4,
    };
    const text = rows([0, 0], [0, 0], [0, 0], [3, 3]);
    const p = assemblePrompt(text, layout, { ids: [0, 1], rows: rows([7, 7], [8, 8]), width: 2 });
    assert.deepEqual(p.positions, [0, 0, 0, 1, 1, 1, 1, 2, 1, 3, 3, 3]);
    const pruned = pruneVisualRows(p, [{ members: [1], mode: 'keep', positionOf: 1 }], layout, 2);
    assert.deepEqual(pruned.positions, [0, 0, 0, 1, 2, 1, 3, 3, 3]);
    assert.deepEqual(pruned.promptRows, [0, 2, 3]);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OrtPairwise } from '../../src/engine/pairwise-kernel.js';
import { applySlots } from '../../src/engine/token-sequence.js';
import { frameQuotas } from '../../src/prune/budget.js';
import { createMethod } from '../../src/prune/registry.js';
import { topK, upperMedian } from '../../src/prune/slots.js';
import type { InputSignals, StageResult } from '../../src/prune/types.js';
import { Prng } from '../../src/synth/prng.js';
import { jsPairwise } from './js-pairwise.js';
import { randomArray, request, tokens } from './signals.js';

function inputSignals(frames: number, side: number, rows: number[][], textTail: number[][] = []): InputSignals {
  return {
    ...tokens(frames, side),
    tokens: Float32Array.from(rows.flat()),
    hidden: rows[0].length,
    textTail: Float32Array.from(textTail.flat()),
  };
}

const kept = (r: StageResult) => r.slots.map((s) => s.positionOf);

describe('baselines and shared selection', () => {
  it('top-k breaks ties toward the lower index and returns rows in order', () => {
    assert.deepEqual(topK([1, 2, 2, 3, 1], 2, 'largest'), [1, 3]);
    assert.deepEqual(topK([1, 2, 2, 3, 1], 1, 'smallest'), [0]);
    assert.deepEqual(topK([5, 5, 5, 5], 2, 'largest', [3, 1, 2]), [1, 2]);
    assert.equal(upperMedian([9, 1, 5, 3]), 5);
  });

  it('random: a seeded sample of each frame quota, the same for the same seed', async () => {
    const signals = inputSignals(
      4,
      4,
      Array.from({ length: 64 }, (_, i) => [i]),
    );
    const run = async (seed: number) =>
      kept(await createMethod('random', { ...request(4, 16, 0.3), seed }).input!(signals, jsPairwise));
    const a = await run(7);
    assert.deepEqual(
      [0, 1, 2, 3].map((f) => a.filter((id) => Math.floor(id / 16) === f).length),
      frameQuotas(19, 4),
    );
    assert.deepEqual(await run(7), a);
    assert.notDeepEqual(await run(8), a);
  });

  it('pool: each frame becomes the means of a 2×2 grid of bins at their upper-median positions', async () => {
    const signals = inputSignals(
      2,
      4,
      Array.from({ length: 32 }, (_, i) => [i]),
    );
    const result = await createMethod('pool', request(2, 16, 0.25)).input!(signals, jsPairwise);
    assert.deepEqual(result.slots[0], { members: [0, 1, 4, 5], mode: 'mean', positionOf: 4 });
    const pooled = applySlots({ ids: signals.ids, rows: signals.tokens, width: 1 }, result.slots);
    assert.deepEqual(pooled.ids, [4, 6, 12, 14, 20, 22, 28, 30]);
    assert.deepEqual([...pooled.rows], [2.5, 4.5, 10.5, 12.5, 18.5, 20.5, 26.5, 28.5]);
  });

  it('FastV keeps the tokens the last prompt token attends to most, ties to the lower id', async () => {
    const method = createMethod('fastv', request(2, 16, 0.5, 8));
    assert.deepEqual(method.layers(8), [2]);
    assert.deepEqual(method.plannedTokensPerLayer(), [32, 32, 11, 11, 11, 11, 11, 11]);
    const base = { ...tokens(2, 4), layer: 2, kappa: new Float32Array(32) };
    const lastTokenAttention = Float32Array.from({ length: 32 }, (_, id) => (id % 4 === 0 ? 1 : 0.5));
    assert.deepEqual(
      kept(await method.layer!({ ...base, lastTokenAttention }, jsPairwise)),
      [0, 1, 2, 3, 4, 8, 12, 16, 20, 24, 28],
    );
    await assert.rejects(method.layer!(base, jsPairwise), /last token's attention/);
  });

  it('DivPrune picks the max–min cosine-distance set on a hand case', async () => {
    // a and b nearly parallel, c orthogonal to a, d opposite a: d has the farthest nearest neighbour,
    // then a (distance 2 from d), then c (distance 1 from both); b (0.01 from a) is left out.
    const signals = inputSignals(1, 2, [
      [1, 0],
      [0.99, 0.14],
      [0, 1],
      [-1, 0],
    ]);
    assert.deepEqual(kept(await createMethod('divprune', request(1, 4, 0.75)).input!(signals, jsPairwise)), [0, 2, 3]);
  });

  it(
    'DART: pivots are the largest-L1 visual tokens and the last text tokens; ' +
      'each frame keeps its least similar tokens',
    async () => {
      const signals = inputSignals(
        2,
        2,
        [
          [10, 0],
          [1, 0.1],
          [0, 1],
          [0.7, 0.7],
          [1, 0],
          [-1, 0.2],
          [0.5, 0.5],
          [0, -1],
        ],
        [
          [1, 0],
          [0, 1],
        ],
      );
      const method = createMethod('dart', request(2, 4, 0.5), { pivots_visual: 1, pivots_text: 1 });
      // Pivots (10,0) and the text tail's last row (0,1); frame 0 keeps its pivot + (0.7,0.7),
      // frame 1 its two least similar.
      assert.deepEqual(kept(await method.input!(signals, jsPairwise)), [0, 3, 5, 7]);
    },
  );

  it('DyCoke-TTM keeps anchors whole and drops the static patches of the other frames', async () => {
    const prng = new Prng(3);
    const frame0 = Array.from({ length: 4 }, () => Array.from(randomArray(prng, 3)));
    const change = (frame: number[][], p: number) =>
      frame.map((row, i) => (i === p ? Array.from(randomArray(prng, 3)) : row));
    const frame1 = change(frame0, 2);
    const frame2 = change(frame0, 3);
    const frame3 = change(frame2, 1);
    const signals = inputSignals(4, 2, [...frame0, ...frame1, ...frame2, ...frame3]);
    const method = createMethod('dycoke', request(4, 4, 0.5));
    // 8 tokens: the anchor's 4, then quotas 1, 1, 2 for frames 1..3; frame 3 is compared with frame 2.
    assert.deepEqual(kept(await method.input!(signals, jsPairwise)), [0, 1, 2, 3, 6, 11, 12, 13]);
    assert.deepEqual(method.plannedTokensPerLayer()[0], 8);
  });

  it('G-Prune conserves information mass (Σ I⁵ = Σ I⁰) and counts self-loops in the degree', async () => {
    const prng = new Prng(5);
    const n = 40;
    const d = 8;
    const x = randomArray(prng, n * d);
    for (const kernel of [jsPairwise, new OrtPairwise(1)]) {
      const p = await kernel.propagate(x, 1, n, d, { threshold: 0.2, temperature: 0.03, iterations: 5 });
      const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
      assert.ok(Math.abs(sum(p.information) - sum(p.initial)) < 1e-5 * sum(p.initial));
      assert.ok(p.degree.every((deg) => deg >= 1));
      assert.notDeepEqual([...p.information], [...p.initial]);
    }
  });

  it('G-Prune prefers a unique token over duplicates (score = I / degree) and keeps frame or clip quotas', async () => {
    const signals = inputSignals(2, 2, [
      [1, 0],
      [1, 0],
      [1, 0],
      [0, 1],
      [1, 0],
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
    const frame = await createMethod('gprune', request(2, 4, 0.5)).input!(signals, jsPairwise);
    assert.deepEqual(kept(frame), [0, 3, 4, 5]);
    const clip = await createMethod('gprune', request(2, 4, 0.25), { scope: 'clip' }).input!(signals, jsPairwise);
    assert.equal(clip.slots.length, 2);
  });

  it(
    'VisionZip: dominant tokens by CLS attention, ' +
      'contextual targets at a stride absorbing their most similar tokens',
    async () => {
      const N = 16;
      const keys = Array.from({ length: N }, (_, id) => (id < 8 ? [1, 0, 1, 0] : [0, 1, 0, 1])).flat();
      const saliency = Float32Array.from({ length: N }, (_, id) => (id === 5 || id === 9 ? 1 : 0));
      const features = Float32Array.from({ length: N }, (_, id) => id);
      const method = createMethod('visionzip', request(1, N, 0.25), { dominant: 2, contextual: 2 });
      const result = await method.encoder!(
        {
          ...tokens(1, 4),
          features,
          featureWidth: 1,
          saliency,
          keys: Float32Array.from(keys),
          visionHidden: 4,
          visionHeads: 2,
        },
        jsPairwise,
      );
      assert.deepEqual(result.slots, [
        { members: [1, 2, 3, 4, 6, 7], mode: 'anchor_plus_mean', anchor: 0, positionOf: 3 },
        { members: [5], mode: 'keep', positionOf: 5 },
        { members: [9], mode: 'keep', positionOf: 9 },
        { members: [10, 11, 12, 13, 14, 15], mode: 'anchor_plus_mean', anchor: 8, positionOf: 12 },
      ]);
      // Value = target + mean(assigned): 0 + 23/6 and 8 + 75/6.
      const rows = applySlots({ ids: tokens(1, 4).ids, rows: features, width: 1 }, result.slots).rows;
      assert.ok(Math.abs(rows[0] - 23 / 6) < 1e-6 && Math.abs(rows[3] - (8 + 75 / 6)) < 1e-6);
    },
  );
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { roundHalfEven, type VitcopBudget, vitcopBudget } from '../../src/prune/budget.js';
import { createMethod } from '../../src/prune/registry.js';
import { upperMedian } from '../../src/prune/slots.js';
import type { EncoderSignals, PruneMethod, Slot } from '../../src/prune/types.js';
import { individualSlotQuotas } from '../../src/prune/vitcop.js';
import { Prng } from '../../src/synth/prng.js';
import { jsPairwise } from './js-pairwise.js';
import { randomArray, request, runMethod, tokens } from './signals.js';

const budgetOf = (m: PruneMethod) => (m as unknown as { budget: VitcopBudget }).budget;
const perFrame = (ids: number[], N: number, F: number) =>
  Array.from({ length: F }, (_, f) => ids.filter((id) => Math.floor(id / N) === f).length);

function checkMergedPositions(slots: Slot[], merge: string): void {
  for (const s of slots) {
    if (s.mode === 'keep') {
      assert.deepEqual([s.members.length, s.positionOf], [1, s.members[0]]);
      continue;
    }
    assert.equal(s.mode, merge);
    assert.ok(s.members.length > 1);
    assert.equal(s.positionOf, upperMedian(s.members), 'merged tokens sit at the upper median of their members');
    if (s.mode === 'anchor_plus_mean') assert.equal(s.anchor, s.positionOf, 'the anchor is the median member');
  }
}

describe('ViTCoP', () => {
  it('Stage II quotas: largest remainder in proportion to |G|−1, ties to lower Σκ, min_per_frame first', () => {
    const clusters = (sizes: number[], frames = sizes.map(() => 0)) =>
      sizes.map((size, i) => ({ size, frame: frames[i] }));
    // Weights 4, 2, 0, 1 (W = 7), 4 slots: floors 2, 1, 0, 0; the leftover goes to the largest remainder (4/7).
    assert.deepEqual(individualSlotQuotas(clusters([5, 3, 1, 2]), [0, 1, 2, 3], 4, 1), [2, 1, 0, 1]);
    // Equal remainders: the cluster with the lower Σκ (earlier in rank) wins.
    assert.deepEqual(individualSlotQuotas(clusters([3, 3]), [1, 0], 1, 1), [0, 1]);
    assert.deepEqual(individualSlotQuotas(clusters([3, 3]), [0, 1], 1, 1), [1, 0]);
    // Every spare member, no more.
    assert.deepEqual(individualSlotQuotas(clusters([5, 3, 1, 2]), [3, 2, 1, 0], 7, 1), [4, 2, 0, 1]);
    // min_per_frame = 2 with one cluster per frame: each frame first gets one individual slot.
    assert.deepEqual(individualSlotQuotas(clusters([4, 4], [0, 1]), [1, 0], 3, 2), [1, 2]);
  });

  for (const merge of ['mean', 'anchor_plus_mean']) {
    for (const p of [undefined, 1]) {
      const setting = `merge=${merge}, ${p ? 'K ≥ R: one cluster per token' : 'K < R'}`;
      it(`Stage II outputs exactly R tokens, Stage III n3, every frame keeps one (${setting})`, async () => {
        for (let seed = 1; seed <= 6; seed++) {
          const F = 3;
          const side = 6;
          const method = createMethod('vitcop', request(F, side * side, 0.3 - seed * 0.02, 8), {
            merge,
            stage0: false,
            ...(p ? { p } : {}),
          });
          const b = budgetOf(method);
          const trace = await runMethod(method, F, side, 8, seed);
          assert.deepEqual(
            trace.alive.map((ids) => ids.length),
            [F * b.n1, b.R, b.n3],
          );
          assert.deepEqual(perFrame(trace.alive[0], 36, F), [b.n1, b.n1, b.n1]);
          assert.ok(perFrame(trace.alive[1], 36, F).every((n) => n >= 1));
          checkMergedPositions(trace.results[1].slots, merge);
          // Every Stage I token is accounted for exactly once.
          assert.deepEqual(
            trace.results[1].slots.flatMap((s) => s.members).sort((x, y) => x - y),
            trace.alive[0],
          );
        }
      });
    }
  }

  it('K ≥ R keeps the R−1 clusters of smallest Σκ and merges the rest; min_per_frame holds', async () => {
    const F = 4;
    const method = createMethod('vitcop', request(F, 16, 0.2, 8), { stage0: false, p: 1, min_per_frame: 2 });
    const b = budgetOf(method);
    const enc = encoderSignals(F, 4, 5);
    const stage1 = await method.encoder!(enc, jsPairwise);
    const ids = stage1.slots.map((s) => s.positionOf);
    // κ grows with the id, so the lowest ids are the most important clusters (p = 1: one token each).
    const kappa = Float32Array.from(ids, (id) => 1 + id / 100);
    const { slots } = await method.layer!({ ...tokens(F, 4, ids), layer: b.S, kappa }, jsPairwise);
    assert.equal(slots.length, b.R);
    assert.ok(b.R < ids.length);
    const rest = slots.find((s) => s.members.length > 1)!;
    const singles = slots.filter((s) => s !== rest).map((s) => s.positionOf);
    assert.deepEqual(
      perFrame([...singles, rest.positionOf], 16, F).map((n) => n >= 2),
      [true, true, true, true],
    );
    const reserved = [0, 1, 2, 3].flatMap((f) => ids.filter((id) => Math.floor(id / 16) === f).slice(0, 2));
    const best = [...new Set([...reserved, ...ids])].sort((x, y) => x - y);
    assert.deepEqual(
      new Set(singles),
      new Set([...reserved, ...best.filter((id) => !reserved.includes(id))].slice(0, b.R - 1)),
    );
    assert.equal(rest.positionOf, upperMedian(rest.members));
  });

  it(
    'Stage III with stage3_min_per_frame 0 keeps the n3 tokens of smallest κ over all frames, ' +
      'ties to the lower id',
    async () => {
      const method = createMethod('vitcop', request(2, 16, 0.3, 8), { stage0: false, stage3_min_per_frame: 0 });
      const b = budgetOf(method);
      const ids = Array.from({ length: 12 }, (_, i) => i * 2 + 1);
      const kappa = Float32Array.from(ids, (_, i) => (i % 3 === 0 ? 0.5 : 2 + i));
      const { slots } = await method.layer!({ ...tokens(2, 4, ids), layer: b.D, kappa }, jsPairwise);
      const expected = ids
        .filter((_, i) => i % 3 === 0)
        .concat(ids.filter((_, i) => i % 3 !== 0))
        .slice(0, b.n3)
        .sort((x, y) => x - y);
      assert.deepEqual(
        slots.map((s) => s.positionOf),
        expected,
      );
    },
  );

  it(
    'Stage 0 drops static patches, records their span on the earlier kept patch, ' + 'and never empties a frame',
    async () => {
      const { F, N, enc } = staticClip();
      const method = createMethod('vitcop', request(F, N, 0.3, 8), { stage0_respend: false });
      const b = budgetOf(method);
      const result = await method.encoder!(enc, jsPairwise);
      const kept = result.slots.map((s) => s.positionOf);
      assert.deepEqual(perFrame(kept, N, F), [b.n1, 4, 1]);
      assert.deepEqual(
        kept.filter((id) => id >= N),
        [16, 17, 18, 19, 32],
        'frame 1: its moving patches; frame 2: its least static one',
      );
      const frame0 = kept.filter((id) => id < N);
      assert.deepEqual(result.timeSpans, [
        ...frame0.filter((id) => id >= 4).map((id) => ({ id, lastFrame: 2 })),
        { id: 17, lastFrame: 2 },
        { id: 18, lastFrame: 2 },
        { id: 19, lastFrame: 2 },
      ]);
      const off = await createMethod('vitcop', request(F, N, 0.3, 8), { stage0: 'off' }).encoder!(enc, jsPairwise);
      assert.deepEqual(
        perFrame(
          off.slots.map((s) => s.positionOf),
          N,
          F,
        ),
        [b.n1, b.n1, b.n1],
      );
    },
  );

  it(
    'Stage 0 re-spends what static frames leave: ' +
      'Stage I keeps F·n1 patches while that many survive, the most salient ones',
    async () => {
      const { F, N, enc } = staticClip();
      const method = createMethod('vitcop', request(F, N, 0.3, 8), {});
      const b = budgetOf(method);
      const kept = (await method.encoder!(enc, jsPairwise)).slots.map((s) => s.positionOf);
      // 16 + 4 + 1 patches survive Stage 0; frames 1 and 2 keep all of theirs, frame 0 gets the rest.
      assert.deepEqual(perFrame(kept, N, F), [Math.min(N, F * b.n1 - 5), 4, 1]);
      const frame0 = Array.from({ length: N }, (_, i) => i).sort((x, y) => enc.saliency[y] - enc.saliency[x] || x - y);
      assert.deepEqual(
        kept.filter((id) => id < N),
        frame0.slice(0, perFrame(kept, N, F)[0]).sort((x, y) => x - y),
      );
    },
  );

  it(
    "Stage III keeps every frame's smallest-κ token (stage3_min_per_frame = 1), " + 'then the smallest κ overall',
    async () => {
      const method = createMethod('vitcop', request(2, 16, 0.3, 8), { stage0: false });
      const b = budgetOf(method);
      const ids = Array.from({ length: 24 }, (_, i) => i + (i >= 12 ? 4 : 0));
      // Frame 1 (ids 16..27) has only large κ; Stage III still keeps its best one.
      const kappa = Float32Array.from(ids, (id) => (id >= 16 ? 100 + (id % 5) : id));
      const { slots } = await method.layer!({ ...tokens(2, 4, ids), layer: b.D, kappa }, jsPairwise);
      const kept = slots.map((s) => s.positionOf);
      assert.equal(kept.length, b.n3);
      assert.deepEqual(
        kept,
        [...ids.slice(0, b.n3 - 1), 20].sort((x, y) => x - y),
      );
    },
  );

  it('stage1: random replaces the encoder saliency by a seeded random one (same count, other patches)', async () => {
    const enc = encoderSignals(3, 6, 5);
    const kept = async (options: Record<string, unknown>, seed = 0) =>
      (await createMethod('vitcop', { ...request(3, 36, 0.2, 8), seed }, options).encoder!(enc, jsPairwise)).slots
        .map((s) => s.positionOf)
        .join();
    const bySaliency = await kept({ stage0: false });
    const byChance = await kept({ stage0: false, stage1: 'random' });
    assert.equal(byChance.split(',').length, bySaliency.split(',').length);
    assert.notEqual(byChance, bySaliency);
    assert.equal(await kept({ stage0: false, stage1: 'random' }), byChance, 'seeded');
    assert.notEqual(await kept({ stage0: false, stage1: 'random' }, 7), byChance);
  });

  it('the default D is round(0.69·L) with halves to even; S and D are options', () => {
    assert.deepEqual(createMethod('vitcop', request(2, 576, 1 / 9, 32)).layers(32), [2, 22]);
    assert.deepEqual(createMethod('vitcop', request(2, 64, 1 / 9, 8)).layers(8), [2, roundHalfEven(0.69 * 8)]);
    assert.deepEqual(createMethod('vitcop', request(2, 64, 1 / 9, 8), { S: 1, D: 5 }).layers(8), [1, 5]);
    assert.equal(vitcopBudget(request(2, 64, 1 / 9, 8), { S: 1, D: 5, minPerFrame: 1, stage3MinPerFrame: 1 }).S, 1);
  });
});

/** 3 frames of 16 patches: frame 1 repeats frame 0 except patches 0..3; frame 2 repeats frame 1 entirely. */
function staticClip() {
  const F = 3;
  const N = 16;
  const enc = encoderSignals(F, 4, 9);
  const dv = enc.visionHidden;
  enc.features.copyWithin(N * dv + 4 * dv, 4 * dv, N * dv);
  enc.features.copyWithin(2 * N * dv, N * dv, 2 * N * dv);
  return { F, N, enc };
}

function encoderSignals(frames: number, side: number, seed: number): EncoderSignals {
  const prng = new Prng(seed);
  const dv = 6;
  const n = frames * side * side;
  return {
    ...tokens(frames, side),
    features: randomArray(prng, n * dv),
    featureWidth: dv,
    saliency: randomArray(prng, n),
    keys: randomArray(prng, n * dv),
    visionHidden: dv,
    visionHeads: 2,
  };
}

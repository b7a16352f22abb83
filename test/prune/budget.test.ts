import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/errors.js';
import {
  budgetReport,
  frameQuotas,
  inputTokenTotal,
  respentStageCounts,
  roundHalfEven,
  vitcopBudget,
  vitcopPlan,
} from '../../src/prune/budget.js';
import { request } from './signals.js';

describe('budget arithmetic', () => {
  it('rounds halves to even, like Python', () => {
    assert.deepEqual([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4999, 2.5001].map(roundHalfEven), [0, 2, 2, 4, 0, -2, 2, 3]);
  });

  it('spreads a total over frames evenly, the extras along the clip', () => {
    assert.deepEqual(frameQuotas(57, 8), [7, 7, 7, 7, 7, 7, 7, 8]);
    assert.deepEqual(frameQuotas(12, 8), [1, 2, 1, 2, 1, 2, 1, 2]);
    assert.deepEqual(frameQuotas(16, 8), [2, 2, 2, 2, 2, 2, 2, 2]);
    assert.equal(inputTokenTotal(request(8, 64, 1 / 9)), 57);
  });

  it('reports input and layer-averaged budgets from a per-layer plan', () => {
    assert.deepEqual(budgetReport([100, 100, 50, 10], 2, 100), {
      input: 100,
      layerAveraged: 65,
      inputFraction: 0.5,
      layerAveragedFraction: 0.325,
    });
  });

  const publishedBudgets =
    'ViTCoP at the published budgets on a 32-layer model with 576 patches: the table, D = 22, and the ≈π identity';
  it(publishedBudgets, () => {
    for (const [budget, rv, p] of [
      [1 / 3, 0.5, 0.18],
      [2 / 9, 0.4, 0.15],
      [1 / 9, 0.3, 0.12],
    ]) {
      for (const F of [1, 8, 16]) {
        const req = request(F, 576, budget, 32);
        const b = vitcopBudget(req, { S: 2, D: roundHalfEven(0.69 * 32), minPerFrame: 1, stage3MinPerFrame: 0 });
        assert.equal(b.D, 22);
        assert.equal(b.r_v, rv);
        assert.equal(b.p, p);
        assert.equal(b.n1, Math.floor(rv * 576));
        assert.equal(b.R, roundHalfEven((32 * budget * F * 576 - 2 * F * b.n1) / (20 + 10 / 5)));
        assert.equal(b.n3, roundHalfEven(b.R / 5));
        // Σ tokens / L = π·F·N up to the rounding of R and n3 (R is solved from the integer n1).
        const averaged = budgetReport(vitcopPlan(b, F, 32), F, 576).layerAveraged;
        assert.ok(Math.abs(averaged - budget * F * 576) <= (20 * 0.5 + 10 * 0.6) / 32, `${averaged}`);
      }
    }
  });

  it(
    'ViTCoP: budgets between the published ones take the nearest row; ' +
      'n1 moves to the nearest count that reaches the budget',
    () => {
      const b = (budget: number, L = 32) =>
        vitcopBudget(request(8, 576, budget, L), {
          S: 2,
          D: roundHalfEven(0.69 * L),
          minPerFrame: 1,
          stage3MinPerFrame: 1,
        });
      assert.equal(b(0.15).r_v, 0.3);
      assert.equal(b(0.2).r_v, 0.4);
      assert.equal(b(0.3).r_v, 0.5);
      // At 0.5, n1 = 288 would need R > 8·n1: the smallest n1 with R ≤ 8·n1 is 384, where R = 8·n1 exactly.
      const high = b(0.5);
      assert.deepEqual([high.n1, high.R], [384, 8 * 384]);
      // On the 8-layer demo shape, 0.056 with r_v = 0.3 would leave Stage II less than a token per frame.
      const demo = vitcopBudget(request(8, 64, 0.056, 8), { S: 2, D: 6, minPerFrame: 1, stage3MinPerFrame: 1 });
      assert.deepEqual([demo.n1, demo.n3], [11, 8]);
      assert.ok(demo.R > 8);
      assert.ok(Math.abs(budgetReport(vitcopPlan(demo, 8, 8), 8, 64).layerAveragedFraction - 0.056) < 0.002);
      assert.equal(b(1 / 9, 8).D, 6);
    },
  );

  it('ViTCoP: a Stage III per-frame minimum raises n3 to one per frame and takes it out of R', () => {
    const global = vitcopBudget(request(8, 64, 1 / 9, 8), { S: 2, D: 6, minPerFrame: 1, stage3MinPerFrame: 0 });
    const perFrame = vitcopBudget(request(8, 64, 1 / 9, 8), { S: 2, D: 6, minPerFrame: 1, stage3MinPerFrame: 1 });
    assert.ok(global.n3 < 8);
    assert.equal(perFrame.n3, 8);
    assert.ok(perFrame.R <= global.R);
    for (const b of [global, perFrame])
      assert.ok(Math.abs(budgetReport(vitcopPlan(b, 8, 8), 8, 64).layerAveraged - 512 / 9) <= 0.5);
  });

  it('ViTCoP: token-layers Stage 0 saves go to Stages II and III, never beyond the tokens alive', () => {
    const opts = { S: 2, D: 6, minPerFrame: 1, stage3MinPerFrame: 1 };
    const req = request(8, 64, 1 / 9, 8);
    const b = vitcopBudget(req, opts);
    const alive = 8 * b.n1 - 20;
    const { R, n3 } = respentStageCounts(b, req, opts, alive);
    assert.ok(R > b.R && n3 >= b.n3);
    const averaged = (2 * alive + 4 * R + 2 * n3) / 8;
    assert.ok(Math.abs(averaged - 512 / 9) <= 2, `${averaged}`);
    assert.deepEqual(respentStageCounts(b, request(8, 64, 0.333, 8), opts, 40), { R: 40, n3: 40 });
  });

  it('ViTCoP: a budget below one Stage II token per frame, or above its reach, is a UsageError with its range', () => {
    const build = (budget: number) => () =>
      vitcopBudget(request(8, 64, budget, 8), { S: 2, D: 6, minPerFrame: 1, stage3MinPerFrame: 1 });
    assert.throws(
      build(0.01),
      (e) =>
        e instanceof UsageError &&
        /vitcop cannot reach/.test(e.message) &&
        /about \[0\.021, 0\.800\]/.test(e.hint ?? ''),
    );
    assert.throws(build(0.9), UsageError);
    assert.throws(
      () => vitcopBudget(request(8, 64, 0.2, 8), { S: 6, D: 6, minPerFrame: 1, stage3MinPerFrame: 1 }),
      /1 ≤ S < D < L/,
    );
  });
});

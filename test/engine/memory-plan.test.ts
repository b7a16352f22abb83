import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SegmentKvCache } from '../../src/engine/kv-cache.js';
import {
  BUDGET_STEPS,
  fitMemoryBudget,
  LOADED_PER_STORED,
  predictPeak,
  type QuerySettings,
} from '../../src/engine/memory-plan.js';
import type { GraphManifest } from '../../src/onnx/convert.js';

const MB = 1024 * 1024;

/** A toy peak: 100 MB, plus 10 MB a frame scaled by the budget, plus 1 MB per 8 answer tokens. */
const toy = (s: QuerySettings) => 100 * MB + s.frames * 10 * MB * s.budget + (s.maxNewTokens / 8) * MB;

describe('fitMemoryBudget', () => {
  const requested = { frames: 32, budget: 1, maxNewTokens: 32 };

  it('keeps the request when it fits', () => {
    const fit = fitMemoryBudget(requested, BUDGET_STEPS, 1000 * MB, toy);
    assert.ok(fit.fits);
    assert.deepEqual(fit.plan.settings, requested);
    assert.deepEqual(fit.plan.degraded, []);
  });

  it('lowers frames first: the most that fit', () => {
    const fit = fitMemoryBudget(requested, BUDGET_STEPS, 200 * MB, toy);
    assert.ok(fit.fits);
    assert.deepEqual(fit.plan.settings, { frames: 9, budget: 1, maxNewTokens: 32 });
    assert.deepEqual(fit.plan.degraded, ['frames']);
    assert.ok(fit.plan.predictedBytes <= 200 * MB);
  });

  it('then the pruning budget, then the answer length', () => {
    const byBudget = fitMemoryBudget(requested, BUDGET_STEPS, 108 * MB, toy);
    assert.ok(byBudget.fits);
    assert.deepEqual(byBudget.plan.settings, { frames: 1, budget: 1 / 3, maxNewTokens: 32 });
    assert.deepEqual(byBudget.plan.degraded, ['frames', 'budget']);
    const byContext = fitMemoryBudget(requested, BUDGET_STEPS, 101.2 * MB, toy);
    assert.ok(byContext.fits);
    assert.deepEqual(byContext.plan.degraded, ['frames', 'budget', 'context']);
    assert.ok(byContext.plan.settings.maxNewTokens < 32);
  });

  it('never lowers the budget of a query that prunes nothing (no budgets to step through)', () => {
    const fit = fitMemoryBudget(requested, [], 112 * MB, toy);
    assert.ok(fit.fits);
    assert.equal(fit.plan.settings.budget, 1);
    assert.deepEqual(fit.plan.degraded, ['frames', 'context']);
  });

  it('refuses with the smallest configuration and what it needs', () => {
    const fit = fitMemoryBudget(requested, BUDGET_STEPS, 50 * MB, toy);
    assert.equal(fit.fits, false);
    if (fit.fits) return;
    assert.deepEqual(fit.smallest, { frames: 1, budget: 1 / 18, maxNewTokens: 1 });
    assert.equal(fit.smallestBytes, toy(fit.smallest));
  });

  it('skips configurations the method cannot run', () => {
    const fit = fitMemoryBudget(requested, BUDGET_STEPS, 108 * MB, (s) => (s.budget === 1 / 3 ? undefined : toy(s)));
    assert.ok(fit.fits);
    assert.equal(fit.plan.settings.budget, 2 / 9);
  });
});

describe('predictPeak', () => {
  const text = {
    hiddenSize: 96,
    intermediateSize: 256,
    numLayers: 8,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 24,
  };
  const manifest = {
    dtype: 'fp16',
    config: {
      modelType: 'llava',
      text,
      vision: { hiddenSize: 128, intermediateSize: 512, numHeads: 4, imageSize: 64, patchSize: 8, numChannels: 3 },
    },
    segments: [
      { start: 0, end: 2, file: 'a', lastTokenAttention: true },
      { start: 2, end: 8, file: 'b', lastTokenAttention: false },
    ],
    weightBytes: { a: 1000, b: 3000 },
  } as unknown as GraphManifest;
  const shape = {
    units: 2,
    tokensPerUnit: 64,
    textRows: 20,
    visualPerLayer: [128, 128, 30, 30, 30, 30, 30, 30],
    maxNewTokens: 8,
  };

  it("counts each segment's KV cache at its pruned rows plus the answer, as the engine allocates it", () => {
    const p = predictPeak(manifest, shape, 0);
    const first = new SegmentKvCache([0, 1], 2, 24, 20 + 128 + 8).bytes;
    const rest = new SegmentKvCache([2, 3, 4, 5, 6, 7], 2, 24, 20 + 30 + 8).bytes;
    assert.equal(p.kv, first + rest);
  });

  it('weights as loaded: the stored bytes times the dtype factor', () => {
    assert.equal(predictPeak(manifest, shape, 0).weights, 4000 * LOADED_PER_STORED.fp16);
  });

  it('adds the baseline, and grows with frames and shrinks with pruning', () => {
    const p = predictPeak(manifest, shape, 100 * MB);
    assert.equal(p.total, p.baseline + p.weights + p.kv + p.activations + p.host);
    const unpruned = predictPeak(manifest, { ...shape, visualPerLayer: new Array(8).fill(128) }, 0);
    const more = predictPeak(manifest, { ...shape, units: 4, visualPerLayer: new Array(8).fill(256) }, 0);
    assert.ok(p.total - p.baseline < unpruned.total && unpruned.total < more.total);
  });
});

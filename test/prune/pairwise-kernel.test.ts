import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OrtPairwise } from '../../src/engine/pairwise-kernel.js';
import { Prng } from '../../src/synth/prng.js';
import { jsPairwise } from './js-pairwise.js';

function randomRows(n: number, d: number, seed: number): Float32Array {
  const prng = new Prng(seed);
  return Float32Array.from({ length: n * d }, () => prng.next() * 2 - 1);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

describe('ONNX Runtime pairwise kernel', () => {
  const kernel = new OrtPairwise(1);

  for (const [n, d] of [
    [1, 3],
    [7, 5],
    [96, 128],
  ] as const) {
    it(`cosine and euclidean match the JS reference within 1e-5 (n=${n}, d=${d})`, async () => {
      const x = randomRows(n, d, n * 1000 + d);
      assert.ok(maxAbsDiff(await kernel.cosine(x, n, d), await jsPairwise.cosine(x, n, d)) < 1e-5);
      assert.ok(maxAbsDiff(await kernel.euclidean(x, n, d), await jsPairwise.euclidean(x, n, d)) < 1e-5);
    });
  }

  it('a zero row has cosine 0 with everything, duplicate rows are at distance exactly 0', async () => {
    const x = Float32Array.of(0, 0, 3, 4, 3, 4);
    const cos = await kernel.cosine(x, 3, 2);
    assert.deepEqual([...cos.subarray(0, 3)], [0, 0, 0]);
    assert.ok(Math.abs(cos[1 * 3 + 2] - 1) < 1e-6);
    const dist = await kernel.euclidean(x, 3, 2);
    assert.equal(dist[1 * 3 + 2], 0);
    assert.ok(Math.abs(dist[0 * 3 + 1] - 5) < 1e-6);
  });

  it('cross cosine [n, m] matches the JS reference, a zero row gives 0', async () => {
    const x = randomRows(50, 32, 3);
    const y = randomRows(8, 32, 4);
    y.fill(0, 0, 32);
    const ort = await kernel.crossCosine(x, 50, y, 8, 32);
    assert.ok(maxAbsDiff(ort, await jsPairwise.crossCosine(x, 50, y, 8, 32)) < 1e-5);
    assert.ok(Array.from({ length: 50 }, (_, i) => ort[i * 8]).every((v) => v === 0));
  });

  it('G-Prune propagation matches the JS reference per group, batched or not', async () => {
    const [b, n, d] = [3, 64, 96];
    const x = randomRows(b * n, d, 77);
    const opts = { threshold: 0.1, temperature: 0.03, iterations: 5 };
    const [ort, js] = [await kernel.propagate(x, b, n, d, opts), await jsPairwise.propagate(x, b, n, d, opts)];
    assert.deepEqual([...ort.degree], [...js.degree]);
    assert.ok(maxAbsDiff(ort.initial, js.initial) < 1e-4);
    assert.ok(maxAbsDiff(ort.information, js.information) < 1e-3 * Math.max(...js.information));
    const second = await kernel.propagate(x.subarray(n * d, 2 * n * d), 1, n, d, opts);
    assert.ok(
      maxAbsDiff(second.information, ort.information.subarray(n, 2 * n)) < 1e-5 * Math.max(...second.information),
    );
  });

  it('rejects data whose length does not match the shape', async () => {
    await assert.rejects(kernel.cosine(new Float32Array(5), 2, 3), RangeError);
  });
});

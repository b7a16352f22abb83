import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { densityPeakClusters, offDiagonalQuantile } from '../../src/prune/vic.js';
import { Prng } from '../../src/synth/prng.js';
import { jsPairwise } from './js-pairwise.js';

/** Points around the given feature-space centres, `per` each, in order. */
function blobs(centres: number[][], per: number, seed: number): Float32Array {
  const prng = new Prng(seed);
  return Float32Array.from(
    centres.flatMap((c) => Array.from({ length: per }, () => c.map((v) => v + (prng.next() - 0.5) * 0.4)).flat()),
  );
}

/** The partition a labelling makes, as sorted lists of indices (independent of label numbering). */
function partition(labels: ArrayLike<number>): number[][] {
  const groups = new Map<number, number[]>();
  for (const [i, l] of Array.from(labels).entries()) {
    let group = groups.get(l);
    if (!group) {
      group = [];
      groups.set(l, group);
    }
    group.push(i);
  }
  return [...groups.values()].sort((a, b) => a[0] - b[0]);
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe('VIC density-peak clustering', () => {
  it('numpy linear quantile of the off-diagonal distances', () => {
    const dist = Float32Array.of(0, 1, 4, 1, 0, 2, 4, 2, 0);
    // Off-diagonal sorted: 1 1 2 2 4 4; q=0.5 → index 2.5 → 2; q=0.9 → index 4.5 → 4.
    assert.equal(offDiagonalQuantile(dist, 3, 0.5), 2);
    assert.equal(offDiagonalQuantile(dist, 3, 0.9), 4);
    assert.equal(offDiagonalQuantile(dist, 3, 0), 1);
  });

  it('the quantile equals a full sort of the off-diagonal entries, with ties and any order', () => {
    let seed = 3;
    const next = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    for (const n of [2, 5, 40, 150]) {
      for (const kind of ['random', 'ties', 'sorted'] as const) {
        const dist = Float32Array.from({ length: n * n }, (_, i) =>
          kind === 'random' ? next() * 10 : kind === 'ties' ? Math.floor(next() * 4) : i,
        );
        const off = [...dist].filter((_, i) => i % n !== Math.floor(i / n)).sort((x, y) => x - y);
        for (const q of [0, 0.02, 0.5, 0.97, 1]) {
          const h = (off.length - 1) * q;
          const lo = Math.floor(h);
          const want = lo + 1 < off.length ? off[lo] + (h - lo) * (off[lo + 1] - off[lo]) : off[lo];
          assert.equal(offDiagonalQuantile(dist, n, q), want, `n ${n} ${kind} q ${q}`);
        }
      }
    }
  });

  it('finds three hand-made clusters', async () => {
    const x = blobs(
      [
        [0, 0],
        [10, 0],
        [0, 10],
      ],
      6,
      3,
    );
    const n = 18;
    const coords = range(0, n).map(() => [0.5, 0.5] as const);
    const labels = densityPeakClusters(await jsPairwise.euclidean(x, n, 2), n, coords, {
      dcQuantile: 0.02,
      radius: 0.6,
      centres: 3,
    });
    assert.deepEqual(partition(labels), [range(0, 6), range(6, 12), range(12, 18)]);
  });

  it('neighbours only within the spatial radius: equal features far apart form their own clusters', async () => {
    const x = blobs(
      [
        [0, 0],
        [0, 0],
      ],
      5,
      4,
    );
    const n = 10;
    const coords = range(0, n).map((i) => [0, i < 5 ? 0 : 1] as const);
    const dist = await jsPairwise.euclidean(x, n, 2);
    const local = densityPeakClusters(dist, n, coords, { dcQuantile: 0.1, radius: 0.6, centres: 2 });
    assert.deepEqual(partition(local), [range(0, 5), range(5, 10)]);
    // A local peak that is not a centre joins the nearest centre: nothing is left unlabelled.
    const one = densityPeakClusters(dist, n, coords, { dcQuantile: 0.1, radius: 0.6, centres: 1 });
    assert.deepEqual([...one], new Array(n).fill(0));
  });

  it('an absolute d_c, duplicate points and a single point', async () => {
    const x = Float32Array.of(0, 0, 0, 0, 5, 5, 5, 5);
    const coords = range(0, 4).map(() => [0, 0] as const);
    const dist = await jsPairwise.euclidean(x, 4, 2);
    assert.equal(offDiagonalQuantile(dist, 4, 0.02), 0);
    assert.deepEqual(partition(densityPeakClusters(dist, 4, coords, { dcQuantile: 0.02, radius: 1, centres: 2 })), [
      [0, 1],
      [2, 3],
    ]);
    assert.deepEqual(
      partition(densityPeakClusters(dist, 4, coords, { dcQuantile: 0.02, dc: 8, radius: 1, centres: 2 })),
      [
        [0, 1],
        [2, 3],
      ],
    );
    assert.deepEqual(
      [...densityPeakClusters(new Float32Array(1), 1, [[0, 0]], { dcQuantile: 0.02, radius: 1, centres: 1 })],
      [0],
    );
  });
});

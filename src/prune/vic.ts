import { topK } from './slots.js';

export interface VicOptions {
  /** d_c as this quantile of the off-diagonal distances (used when `dc` is not given). */
  dcQuantile: number;
  /** An absolute d_c (the paper's 8 for CLIP-L layer-22 keys). */
  dc?: number;
  /** Neighbours must lie within this distance in grid-normalised coordinates. */
  radius: number;
  /** Number of cluster centres c. */
  centres: number;
}

/**
 * numpy's default ("linear") quantile of the off-diagonal entries of a distance matrix [n, n]. Only the
 * two order statistics around the quantile are needed: a selection (quickselect, linear on average)
 * finds them without sorting all n(n−1) entries.
 */
export function offDiagonalQuantile(dist: Float32Array, n: number, q: number): number {
  const k = n * (n - 1);
  if (k === 0) return 0;
  const h = (k - 1) * q;
  const lo = Math.floor(h);
  const values = new Float64Array(k);
  let t = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) values[t++] = dist[i * n + j];
  const a = selectNth(values, lo);
  if (lo + 1 >= k) return a;
  // After the selection every entry past `lo` is ≥ values[lo]: the next order statistic is their minimum.
  let b = Infinity;
  for (let i = lo + 1; i < k; i++) if (values[i] < b) b = values[i];
  return a + (h - lo) * (b - a);
}

/** Reorders `a` so that a[nth] holds its nth smallest value, smaller ones before it and larger after. */
function selectNth(a: Float64Array, nth: number): number {
  let left = 0;
  let right = a.length - 1;
  while (left < right) {
    const mid = (left + right) >>> 1;
    // Median of three as the pivot keeps sorted or nearly sorted input linear.
    if (a[mid] < a[left]) swap(a, mid, left);
    if (a[right] < a[left]) swap(a, right, left);
    if (a[right] < a[mid]) swap(a, right, mid);
    const pivot = a[mid];
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) swap(a, i++, j--);
    }
    if (nth <= j) right = j;
    else if (nth >= i) left = i;
    else break;
  }
  return a[nth];
}

function swap(a: Float64Array, i: number, j: number): void {
  const v = a[i];
  a[i] = a[j];
  a[j] = v;
}

/**
 * VIC: density-peak clustering with a spatial limit (methods.md §1), on one frame's tokens.
 * `dist` [n, n] holds feature distances, `coords` each token's (row, col) in grid-normalised units.
 * Returns each token's cluster, numbered by the centres' row order; every token gets a cluster.
 */
export function densityPeakClusters(
  dist: Float32Array,
  n: number,
  coords: readonly (readonly [number, number])[],
  opts: VicOptions,
): Int32Array {
  const labels = new Int32Array(n);
  if (n <= 1) return labels;
  const dc = opts.dc ?? offDiagonalQuantile(dist, n, opts.dcQuantile);
  const rho = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const d = dist[i * n + j];
      // d_c = 0 (duplicate features): identical tokens count fully, all others not at all.
      const u = d === 0 ? 0 : d / dc;
      rho[i] += Math.exp(-u * u);
    }
  }
  const denser = (j: number, i: number) => rho[j] > rho[i] || (rho[j] === rho[i] && j < i);
  const delta = new Float64Array(n);
  const nearestDenser = new Int32Array(n).fill(-1);
  const radius2 = opts.radius * opts.radius;
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    let farthest = 0;
    const [yi, xi] = coords[i];
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const d = dist[i * n + j];
      if (d > farthest) farthest = d;
      if (d >= best || !denser(j, i)) continue;
      const dy = yi - coords[j][0];
      const dx = xi - coords[j][1];
      if (dy * dy + dx * dx <= radius2) {
        best = d;
        nearestDenser[i] = j;
      }
    }
    delta[i] = nearestDenser[i] < 0 ? farthest : best;
  }
  const gamma = rho.map((r, i) => r * delta[i]);
  const centres = topK(gamma, Math.max(1, Math.min(n, opts.centres)), 'largest');
  const centreLabel = new Map(centres.map((row, c) => [row, c]));
  // Densest first, so a token's nearest denser neighbour is labelled before the token.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (a === b ? 0 : denser(a, b) ? -1 : 1));
  for (const i of order) {
    const own = centreLabel.get(i);
    if (own !== undefined) labels[i] = own;
    else if (nearestDenser[i] >= 0) labels[i] = labels[nearestDenser[i]];
    else {
      // No denser neighbour within the radius: the nearest centre (the first of equally near ones).
      let nearest = 0;
      for (let c = 1; c < centres.length; c++) {
        if (dist[i * n + centres[c]] < dist[i * n + centres[nearest]]) nearest = c;
      }
      labels[i] = nearest;
    }
  }
  return labels;
}

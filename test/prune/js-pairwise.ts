import type { Pairwise, Propagation, PropagationOptions } from '../../src/prune/types.js';

/** Plain JS loops in float64: the reference the ONNX kernel is checked against, and the kernel method tests use. */
export const jsPairwise: Pairwise = {
  async cosine(x, n, d) {
    const norms = Array.from({ length: n }, (_, i) => Math.sqrt(dot(x, i, i, d)));
    return fill(n, (i, j) => (norms[i] && norms[j] ? dot(x, i, j, d) / (norms[i] * norms[j]) : 0));
  },
  async euclidean(x, n, d) {
    return fill(n, (i, j) => {
      let s = 0;
      for (let k = 0; k < d; k++) s += (x[i * d + k] - x[j * d + k]) ** 2;
      return Math.sqrt(s);
    });
  },
  async crossCosine(x, n, y, m, d) {
    const out = new Float32Array(n * m);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let xy = 0;
        let xx = 0;
        let yy = 0;
        for (let k = 0; k < d; k++) {
          xy += x[i * d + k] * y[j * d + k];
          xx += x[i * d + k] ** 2;
          yy += y[j * d + k] ** 2;
        }
        out[i * m + j] = xx && yy ? xy / Math.sqrt(xx * yy) : 0;
      }
    }
    return out;
  },
  async propagate(x, batch, n, d, opts) {
    const parts = await Promise.all(
      Array.from({ length: batch }, async (_, b) => {
        const group = x.subarray(b * n * d, (b + 1) * n * d);
        return propagateGroup(
          await this.cosine(group, n, d),
          Array.from({ length: n }, (_, i) => Math.sqrt(dot(group, i, i, d))),
          n,
          opts,
        );
      }),
    );
    const join = (key: keyof Propagation) => Float32Array.from(parts.flatMap((p) => [...p[key]]));
    return { initial: join('initial'), information: join('information'), degree: join('degree') };
  },
};

/** G-Prune's propagation on one group in float64 (P built row by row, then I ← I·P). */
function propagateGroup(
  cos: Float32Array,
  norms: number[],
  n: number,
  opts: PropagationOptions,
): { initial: Float64Array; information: Float64Array; degree: Float64Array } {
  const P = new Float64Array(n * n);
  const degree = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const edge = (j: number) => j === i || cos[i * n + j] >= opts.threshold;
    let max = -Infinity;
    for (let j = 0; j < n; j++) if (edge(j)) max = Math.max(max, cos[i * n + j]);
    let sum = 0;
    for (let j = 0; j < n; j++) {
      if (!edge(j)) continue;
      degree[i]++;
      sum += P[i * n + j] = Math.exp((cos[i * n + j] - max) / opts.temperature);
    }
    for (let j = 0; j < n; j++) P[i * n + j] /= sum;
  }
  const initial = Float64Array.from(norms);
  let information = initial;
  for (let t = 0; t < opts.iterations; t++) {
    const next = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) next[j] += information[i] * P[i * n + j];
    information = next;
  }
  return { initial, information, degree };
}

function dot(x: Float32Array, i: number, j: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += x[i * d + k] * x[j * d + k];
  return s;
}

function fill(n: number, f: (i: number, j: number) => number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = f(i, j);
  return out;
}

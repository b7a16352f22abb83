import type { Pairwise } from '../../src/prune/types.js';

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
};

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

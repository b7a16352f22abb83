import { constantPlan, inputFrameQuotas, inputTokenTotal } from './budget.js';
import { choice, num, readOptions } from './options.js';
import { gatherRows, keepRows, rowsByFrame, topK } from './slots.js';
import type { MethodFactory } from './types.js';

export interface PropagationOptions {
  threshold: number;
  temperature: number;
  iterations: number;
}

export interface Propagation {
  /** I⁰: the tokens' L2 norms. */
  initial: Float64Array;
  /** I after the iterations. */
  information: Float64Array;
  /** Edges per token, self-loop included. */
  degree: Int32Array;
  /** g = I / degree: the keep score. */
  score: Float64Array;
}

/**
 * G-Prune's information propagation on a cosine-similarity matrix [n, n] (methods.md §2). P is
 * row-stochastic, so I·P conserves the total information: Σ I_final = Σ I⁰ up to rounding.
 */
export function propagateInformation(cos: Float32Array, norms: ArrayLike<number>, n: number, opts: PropagationOptions): Propagation {
  const P = new Float64Array(n * n);
  const degree = new Int32Array(n);
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
  const initial = Float64Array.from({ length: n }, (_, i) => norms[i]);
  let information = initial;
  for (let t = 0; t < opts.iterations; t++) {
    const next = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const v = information[i];
      if (v !== 0) for (let j = 0; j < n; j++) next[j] += v * P[i * n + j];
    }
    information = next;
  }
  return { initial, information, degree, score: information.map((v, j) => v / degree[j]) };
}

/**
 * G-Prune on the projected tokens, per frame (`scope` frame, each frame keeping its quota) or over the
 * whole clip (`scope` clip, keeping round(π·F·N) tokens wherever they are).
 */
export const createGprune: MethodFactory = (request, options) => {
  const opts = readOptions('gprune', options, {
    scope: choice(['frame', 'clip'], 'frame'),
    threshold: num(0.5, { min: -1, max: 1 }),
    temperature: num(0.03, { min: Number.MIN_VALUE }),
    iterations: num(5, { min: 0, integer: true }),
  });
  const quotas = opts.scope === 'frame' ? inputFrameQuotas(request) : [inputTokenTotal(request)];
  return {
    name: 'gprune',
    layers: () => [],
    async input(signals, pairwise) {
      const d = signals.hidden;
      const groups = opts.scope === 'frame' ? rowsByFrame(signals) : [signals.ids.map((_, r) => r)];
      const kept: number[] = [];
      for (const [g, rows] of groups.entries()) {
        const x = gatherRows(signals.tokens, d, rows);
        const norms = rows.map((_, i) => Math.sqrt(x.subarray(i * d, (i + 1) * d).reduce((a, v) => a + v * v, 0)));
        const { score } = propagateInformation(await pairwise.cosine(x, rows.length, d), norms, rows.length, opts);
        kept.push(...topK(score, quotas[g], 'largest').map((i) => rows[i]));
      }
      return keepRows(signals, kept.sort((a, b) => a - b));
    },
    plannedTokensPerLayer: () => constantPlan(inputTokenTotal(request), request.numLayers),
  };
};

import { Prng } from '../synth/prng.js';

export interface SamplingOptions {
  /** 0 = greedy (ties go to the lowest id). */
  temperature: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches topP. */
  topP: number;
  seed: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topP: 1, seed: 0 };

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Picks next tokens from logits: greedy, or seeded temperature + top-p sampling. */
export class TokenSampler {
  private readonly prng: Prng;

  constructor(readonly opts: SamplingOptions) {
    this.prng = new Prng(opts.seed >>> 0);
  }

  next(logits: ArrayLike<number>): number {
    if (this.opts.temperature <= 0) return argmax(logits);
    const n = logits.length;
    const max = logits[argmax(logits)];
    const probs = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += probs[i] = Math.exp((logits[i] - max) / this.opts.temperature);
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
    let kept = 0;
    let mass = 0;
    while (kept < n && mass < this.opts.topP * sum) mass += probs[order[kept++]];
    let r = this.prng.next() * mass;
    for (let k = 0; k < kept; k++) {
      r -= probs[order[k]];
      if (r <= 0) return order[k];
    }
    return order[kept - 1];
  }
}

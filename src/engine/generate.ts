import { type SamplingOptions, TokenSampler } from './sampling.js';
import type { VlmRunner } from './vlm-runner.js';

export interface GenerationOptions {
  maxNewTokens: number;
  sampling: SamplingOptions;
  eosTokenIds: readonly number[];
}

export interface Generated {
  tokens: number[];
  finishReason: 'eos' | 'length';
}

/**
 * The decode loop after prefill. Generated token t sits at position promptLength + t (the unpruned
 * prompt length: pruning keeps original positions, methods.md §0). EOS ends generation and is not
 * part of the answer.
 */
export async function generateTokens(
  runner: VlmRunner,
  firstLogits: Float32Array,
  promptLength: number,
  opts: GenerationOptions,
  onToken?: (token: number) => void,
): Promise<Generated> {
  const sampler = new TokenSampler(opts.sampling);
  const tokens: number[] = [];
  let logits = firstLogits;
  while (tokens.length < opts.maxNewTokens) {
    const token = sampler.next(logits);
    if (opts.eosTokenIds.includes(token)) return { tokens, finishReason: 'eos' };
    tokens.push(token);
    onToken?.(token);
    if (tokens.length === opts.maxNewTokens) break;
    logits = await runner.decode(token, promptLength + tokens.length - 1);
  }
  return { tokens, finishReason: 'length' };
}

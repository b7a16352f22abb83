import { ModelError } from '../errors.js';
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
 * The decode loop after prefill. Generated token t sits at position nextPosition + t (after the
 * unpruned prompt: pruning keeps original positions, methods.md §0). EOS ends generation and is not
 * part of the answer.
 */
export async function generateTokens(
  runner: VlmRunner,
  firstLogits: Float32Array,
  nextPosition: number,
  opts: GenerationOptions,
  onToken?: (token: number) => void,
): Promise<Generated> {
  const sampler = new TokenSampler(opts.sampling);
  const tokens: number[] = [];
  let logits = firstLogits;
  while (tokens.length < opts.maxNewTokens) {
    checkFinite(logits, tokens.length);
    const token = sampler.next(logits);
    if (opts.eosTokenIds.includes(token)) return { tokens, finishReason: 'eos' };
    tokens.push(token);
    onToken?.(token);
    if (tokens.length === opts.maxNewTokens) break;
    logits = await runner.decode(token, nextPosition + tokens.length - 1);
  }
  return { tokens, finishReason: 'length' };
}

/** NaN or ±Inf logits would silently become token 0 or an empty answer; they mean broken weights. */
function checkFinite(logits: Float32Array, step: number): void {
  for (let i = 0; i < logits.length; i++) {
    if (!Number.isFinite(logits[i])) {
      throw new ModelError(
        `the model produced a non-finite logit (${logits[i]}) at answer token ${step + 1}: its weights are ` +
          'likely corrupt (a damaged or partly written .safetensors file of the right size) or overflow in fp16',
        'download the checkpoint again (compare sha256 sums with the source), or convert with --dtype fp32',
      );
    }
  }
}

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readVlmConfig } from '../../src/model/config.js';
import { openWeights } from '../../src/model/safetensors.js';
import { flatten, maxRelativeError } from '../helpers/numeric.js';
import { erf, greedyGenerate, LlavaReference } from '../reference/llava-reference.js';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/hf-reference');

interface Input {
  input_ids: number[];
  // A nested [1, 3, H, W] array (not {shape, data} as the fixture README says).
  pixel_values: unknown;
  n_new_tokens: number;
}

interface Output {
  vision_features: { data: unknown };
  image_features: { data: unknown };
  last_logits: number[];
  greedy_tokens: number[];
  greedy_step_max_logit: number[];
}

for (const name of ['llava-tiny-clip-llama', 'llava-tiny-siglip-qwen2']) {
  describe(`the TypeScript reference matches transformers 4.46 on ${name}`, () => {
    const dir = join(FIXTURES, name);
    const input = JSON.parse(readFileSync(join(dir, 'input.json'), 'utf8')) as Input;
    const expected = JSON.parse(readFileSync(join(dir, 'reference_output.json'), 'utf8')) as Output;
    const config = readVlmConfig(dir);
    const weights = openWeights(dir);
    const ref = new LlavaReference(config, weights);
    const vision = ref.vision(Float32Array.from(flatten(input.pixel_values)));
    const image = ref.project(vision.features, vision.tokens);
    const embeds = ref.embedPrompt(input.input_ids, image);

    it('vision features and projected image features', () => {
      const v = maxRelativeError(vision.features, flatten(expected.vision_features.data));
      const p = maxRelativeError(image, flatten(expected.image_features.data));
      console.log(`${name}: vision_features rel err ${v.toExponential(2)}, image_features ${p.toExponential(2)}`);
      assert.ok(v <= 1e-4, `vision_features ${v}`);
      assert.ok(p <= 1e-4, `image_features ${p}`);
    });

    it('last-position logits after prefill', () => {
      const logits = ref.decode(
        embeds,
        input.input_ids.map((_, i) => i),
      ).logits!;
      const e = maxRelativeError(logits, expected.last_logits);
      console.log(`${name}: last_logits rel err ${e.toExponential(2)}`);
      assert.ok(e <= 1e-4, `last_logits ${e}`);
    });

    it('greedy tokens with the KV cache', () => {
      const out = greedyGenerate(ref, embeds, input.n_new_tokens);
      assert.deepEqual(out.tokens, expected.greedy_tokens);
      assert.ok(maxRelativeError(out.maxLogits, expected.greedy_step_max_logit) <= 1e-4);
      weights.close();
    });
  });
}

describe('reference decoder invariants', () => {
  const dir = join(FIXTURES, 'llava-tiny-siglip-qwen2');
  const config = readVlmConfig(dir);
  const weights = openWeights(dir);
  const ref = new LlavaReference(config, weights);
  const ids = [1, 5, 6, 7, 8, 9, 10, 11];
  const positions = ids.map((_, i) => i);
  const whole = ref.decode(ref.embed(ids), positions);

  it('two segments back to back equal one pass', () => {
    const a = ref.decode(ref.embed(ids), positions, { from: 0, to: 1 });
    const b = ref.decode(a.hidden, positions, { from: 1, to: 2 });
    assert.ok(maxRelativeError(b.logits!, whole.logits!) < 1e-6);
    assert.equal(a.logits, undefined);
  });

  it('prefill in two chunks with a past equals one prefill (KV, κ, attention row)', () => {
    const first = ref.decode(ref.embed(ids.slice(0, 5)), positions.slice(0, 5));
    const rest = ref.decode(ref.embed(ids.slice(5)), positions.slice(5), { past: first.present });
    assert.ok(maxRelativeError(rest.logits!, whole.logits!) < 1e-6);
    assert.ok(maxRelativeError(rest.present[1]!.k, whole.present[1]!.k) < 1e-6);
    assert.ok(maxRelativeError(rest.kappa[0]!, whole.kappa[0]!.slice(5)) < 1e-6);
    assert.ok(maxRelativeError(rest.lastAttention[1]!, whole.lastAttention[1]!) < 1e-6);
  });

  it('κ is the norm of the head-averaged pre-RoPE key, and positions do not change it', () => {
    const shifted = ref.decode(
      ref.embed(ids),
      positions.map((p) => p + 100),
      { from: 0, to: 1 },
    );
    assert.ok(maxRelativeError(shifted.kappa[0]!, whole.kappa[0]!) < 1e-6);
    const row = whole.lastAttention[0]!;
    assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-6);
  });

  it('erf is accurate on both branches', () => {
    assert.ok(Math.abs(erf(0.5) - 0.5204998778130465) < 1e-14);
    assert.ok(Math.abs(erf(-3) + 0.9999779095030014) < 1e-14);
    assert.ok(Math.abs(erf(2.4999) - 0.999593) < 1e-6);
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { argmax } from '../../src/engine/sampling.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import { readVlmConfig } from '../../src/model/config.js';
import { openWeights } from '../../src/model/safetensors.js';
import { convertCheckpoint } from '../../src/onnx/convert.js';
import { llavaVision, tempDir } from '../helpers/fixtures.js';
import { flatten, maxRelativeError } from '../helpers/numeric.js';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/hf-reference');

interface Reference {
  vision_features: { data: number[] };
  image_features: { data: number[] };
  last_logits: number[];
  greedy_tokens: number[];
}

async function runFixture(name: string, boundaries: number[]) {
  const dir = join(FIXTURES, name);
  const input = JSON.parse(readFileSync(join(dir, 'input.json'), 'utf8')) as {
    input_ids: number[];
    pixel_values: unknown;
    n_new_tokens: number;
  };
  const ref = JSON.parse(readFileSync(join(dir, 'reference_output.json'), 'utf8')) as Reference;
  const config = readVlmConfig(dir);
  const weights = openWeights(dir);
  const out = tempDir('parity');
  const { dir: graphDir, manifest } = await convertCheckpoint(
    { dir, config, weights, hashSourceFiles: async () => ({}) },
    { outDir: out, boundaries },
  );
  const runner = await VlmRunner.open(graphDir, manifest, DEFAULT_RUNTIME);
  const vision = await runner.encode(llavaVision(Float32Array.from(flatten(input.pixel_values)), 1, config));
  const imageTokens = await runner.project(vision.features, vision.tokens);
  const d = config.text.hiddenSize;
  const hidden = await runner.embed(input.input_ids);
  let row = 0;
  input.input_ids.forEach((id, i) => {
    if (id === config.imageTokenId) hidden.set(imageTokens.subarray(row * d, ++row * d), i * d);
  });
  const positions = input.input_ids.map((_, i) => i);
  const prefill = await runner.prefill(hidden, positions, input.n_new_tokens);
  const tokens = [argmax(prefill.logits)];
  for (let t = 1; t < input.n_new_tokens; t++) {
    tokens.push(argmax(await runner.decode(tokens[t - 1], input.input_ids.length + t - 1)));
  }
  await runner.release();
  return { ref, vision, imageTokens, logits: prefill.logits, tokens };
}

for (const name of ['llava-tiny-clip-llama', 'llava-tiny-siglip-qwen2']) {
  describe(`graphs match Hugging Face transformers on ${name}`, () => {
    for (const boundaries of [[], [1]]) {
      it(`with ${boundaries.length + 1} decoder segment(s)`, async () => {
        const r = await runFixture(name, boundaries);
        assert.ok(maxRelativeError(r.vision.features, r.ref.vision_features.data) < 1e-4, 'vision features');
        assert.ok(maxRelativeError(r.imageTokens, r.ref.image_features.data) < 1e-4, 'projected image features');
        const logitErr = maxRelativeError(r.logits, r.ref.last_logits);
        assert.ok(logitErr < 1e-4, `last logits relative error ${logitErr}`);
        assert.deepEqual(r.tokens, r.ref.greedy_tokens);
      });
    }
  });
}

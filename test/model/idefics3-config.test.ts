import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readIdefics3Config } from '../../src/model/idefics3-config.js';
import { idefics3Keys } from '../../src/onnx/idefics3-keys.js';
import { dirWith, throwsModelError } from '../helpers/config-files.js';

const FIXTURE = join(import.meta.dirname, '../../../test/fixtures/hf-reference/idefics3-tiny');

type Json = Record<string, unknown>;

function fixtureConfig(): Json & { text_config: Json; vision_config: Json } {
  return JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
}

describe('readIdefics3Config', () => {
  it('reads the idefics3-tiny fixture', () => {
    const c = readIdefics3Config(FIXTURE);
    assert.equal(c.modelType, 'idefics3');
    assert.deepEqual(c.vision, {
      hiddenSize: 32,
      intermediateSize: 64,
      numLayers: 2,
      numHeads: 2,
      imageSize: 32,
      patchSize: 4,
      numChannels: 3,
      layerNormEps: 1e-6,
      act: 'gelu_tanh',
      patchesPerSide: 8,
    });
    assert.equal(c.scaleFactor, 4);
    assert.equal(c.featureWidth, 512);
    assert.equal(c.tokensPerSide, 2);
    assert.equal(c.tokensPerImage, 4);
    assert.equal(c.imageTokenId, 127);
    assert.equal(c.text.family, 'llama');
    assert.equal(c.text.hiddenSize, 32);
    assert.equal(c.text.ropeTheta, 100000);
    assert.equal(c.text.tieWordEmbeddings, false);
    assert.deepEqual(c.text.eosTokenIds, [3]);
  });

  it("reads SmolVLM2's model types and ties the LM head on the top-level flag", () => {
    const config = fixtureConfig();
    config.model_type = 'smolvlm';
    config.vision_config.model_type = 'smolvlm_vision';
    config.tie_word_embeddings = true;
    config.text_config.tie_word_embeddings = false;
    const c = readIdefics3Config(dirWith(config));
    assert.equal(c.modelType, 'smolvlm');
    assert.equal(c.text.tieWordEmbeddings, true);
  });

  it('refuses other model types and a scale factor that does not divide the patch grid', () => {
    throwsModelError(() => readIdefics3Config(dirWith({ ...fixtureConfig(), model_type: 'llava' })), /"llava"/);
    const vision = { ...fixtureConfig(), vision_config: { ...fixtureConfig().vision_config, model_type: 'siglip' } };
    throwsModelError(() => readIdefics3Config(dirWith(vision)), /vision_config\.model_type "siglip"/);
    throwsModelError(() => readIdefics3Config(dirWith({ ...fixtureConfig(), scale_factor: 3 })), /scale_factor/);
  });

  it('refuses weights without the Idefics3 text model', () => {
    const reader = { has: () => false, shape: () => [], get: () => new Float32Array() };
    throwsModelError(() => idefics3Keys(reader), /model\.text_model\.embed_tokens\.weight/);
  });
});

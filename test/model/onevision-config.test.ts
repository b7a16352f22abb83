import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readOnevisionConfig } from '../../src/model/onevision-config.js';
import { dirWith, throwsModelError } from '../helpers/config-files.js';

const FIXTURE = join(import.meta.dirname, '../../../test/fixtures/hf-reference/llava-onevision-tiny');

type Json = Record<string, unknown>;

function fixtureConfig(): Json & { vision_config: Json; text_config: Json } {
  return JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
}

describe('readOnevisionConfig', () => {
  it('reads the tiny fixture', () => {
    const c = readOnevisionConfig(FIXTURE);
    assert.equal(c.modelType, 'llava_onevision');
    assert.deepEqual(
      { ...c.vision },
      {
        family: 'siglip',
        hiddenSize: 48,
        intermediateSize: 96,
        numLayers: 2,
        numHeads: 3,
        imageSize: 12,
        patchSize: 4,
        numChannels: 3,
        layerNormEps: 1e-6,
        act: 'gelu_tanh',
        hasClassToken: false,
        featureLayer: 2,
        selectStrategy: 'full',
        gridSize: 3,
      },
    );
    assert.equal(c.text.family, 'qwen2');
    assert.equal(c.text.hiddenSize, 32);
    assert.equal(c.text.ropeTheta, 1e6);
    assert.equal(c.text.tieWordEmbeddings, false);
    assert.deepEqual(c.text.eosTokenIds, [2]);
    assert.deepEqual(c.projector, { act: 'gelu', inputSize: 48, hiddenSize: 32, outputSize: 32, bias: true });
    assert.equal(c.imageTokenId, 126);
    assert.equal(c.videoTokenId, 127);
    assert.equal(c.imageGridPinpoints.length, 36);
    assert.deepEqual(c.imageGridPinpoints[7], [24, 24]);
    assert.equal(c.maxAnyresTiles, 9);
    assert.equal(c.patchGrid, 3);
    assert.equal(c.pooledGrid, 2);
  });

  it("takes LlavaOnevisionConfig's defaults for the keys save_pretrained leaves out", () => {
    const config = fixtureConfig();
    for (const key of [
      'vision_feature_layer',
      'vision_feature_select_strategy',
      'vision_aspect_ratio',
      'image_grid_pinpoints',
      'image_token_index',
      'video_token_index',
    ]) {
      delete config[key];
    }
    config.vision_config = { ...config.vision_config, image_size: 384, patch_size: 14 };
    const c = readOnevisionConfig(dirWith(config));
    assert.equal(c.vision.featureLayer, 2, 'the last layer');
    assert.equal(c.maxAnyresTiles, 9);
    assert.equal(c.imageTokenId, 151646);
    assert.equal(c.videoTokenId, 151647);
    assert.deepEqual(c.imageGridPinpoints[0], [384, 384]);
    assert.deepEqual(c.imageGridPinpoints[35], [2304, 2304]);
    assert.equal(c.patchGrid, 27);
    assert.equal(c.pooledGrid, 14);
  });

  it('reads tie_word_embeddings from the text config, as the Qwen2 language model does', () => {
    const config = fixtureConfig();
    config.text_config = { ...config.text_config, tie_word_embeddings: true };
    assert.equal(readOnevisionConfig(dirWith(config)).text.tieWordEmbeddings, true);
  });

  it('refuses what the packing cannot do, naming the field', () => {
    const cases: [Json, RegExp][] = [
      [{ model_type: 'llava' }, /model_type "llava" is not llava_onevision/],
      [{ vision_feature_select_strategy: 'default' }, /vision_feature_select_strategy.*only "full"/],
      [{ vision_feature_layer: [-2, -1] }, /vision_feature_layer.*list/],
      [{ vision_feature_layer: -3 }, /vision_feature_layer.*-1\.\.-2/],
      [{ vision_aspect_ratio: 'anyres' }, /vision_aspect_ratio.*anyres_max_N/],
      [{ image_grid_pinpoints: [[12, 18]] }, /image_grid_pinpoints.*multiple of 12/],
    ];
    for (const [change, pattern] of cases) {
      throwsModelError(() => readOnevisionConfig(dirWith({ ...fixtureConfig(), ...change })), pattern);
    }
    const clip = fixtureConfig();
    clip.vision_config = { ...clip.vision_config, model_type: 'clip_vision_model' };
    throwsModelError(() => readOnevisionConfig(dirWith(clip)), /clip_vision_model" is not supported/);
  });
});

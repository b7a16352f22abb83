import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readVlmConfig } from '../../src/model/config.js';
import { dirWith, throwsModelError } from '../helpers/config-files.js';
import { tempDir } from '../helpers/fixtures.js';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/hf-reference');

type Json = Record<string, unknown>;

/** A fixture's config.json, to edit before writing it back: top-level fields and the two sub-configs. */
function fixtureConfig(name: string): Json & { text_config: Json; vision_config: Json } {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));
}

describe('readVlmConfig', () => {
  it('reads the CLIP + Llama fixture', () => {
    const c = readVlmConfig(join(FIXTURES, 'llava-tiny-clip-llama'));
    assert.deepEqual(c.vision, {
      family: 'clip',
      hiddenSize: 64,
      intermediateSize: 128,
      numLayers: 2,
      numHeads: 4,
      imageSize: 32,
      patchSize: 8,
      numChannels: 3,
      layerNormEps: 1e-5,
      act: 'quick_gelu',
      hasClassToken: true,
      featureLayer: 1,
      selectStrategy: 'default',
      gridSize: 4,
    });
    assert.deepEqual(c.text, {
      family: 'llama',
      hiddenSize: 64,
      intermediateSize: 128,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      vocabSize: 128,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      ropeScaling: { type: 'default' },
      qkvBias: false,
      oProjBias: false,
      mlpBias: false,
      act: 'silu',
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 512,
      bosTokenId: 1,
      eosTokenIds: [2],
    });
    assert.deepEqual(c.projector, { act: 'gelu', inputSize: 64, hiddenSize: 64, outputSize: 64, bias: true });
    assert.equal(c.imageTokenId, 127);
    assert.equal(c.tokensPerImage, 16);
  });

  it('reads the SigLIP + Qwen2 fixture', () => {
    const c = readVlmConfig(join(FIXTURES, 'llava-tiny-siglip-qwen2'));
    assert.equal(c.vision.family, 'siglip');
    assert.equal(c.vision.act, 'gelu_tanh');
    assert.equal(c.vision.hasClassToken, false);
    assert.equal(c.vision.selectStrategy, 'full');
    assert.equal(c.vision.layerNormEps, 1e-6);
    assert.equal(c.tokensPerImage, 16);
    assert.equal(c.text.family, 'qwen2');
    assert.equal(c.text.qkvBias, true);
    assert.equal(c.text.oProjBias, false);
    assert.equal(c.text.headDim, 16);
  });

  it('SigLIP 384 px at patch 14 (llava-interleave, OneVision): 27×27 patches, the remainder dropped', () => {
    const cfg = fixtureConfig('llava-tiny-siglip-qwen2');
    cfg.vision_config = { ...cfg.vision_config, image_size: 384, patch_size: 14 };
    const c = readVlmConfig(dirWith(cfg));
    assert.equal(c.vision.gridSize, 27);
    assert.equal(c.tokensPerImage, 729);
    cfg.vision_config = { ...cfg.vision_config, image_size: 12, patch_size: 14 };
    throwsModelError(() => readVlmConfig(dirWith(cfg)), 'patch_size', 'larger than image_size');
  });

  it('takes transformers defaults for fields a sparse config leaves out (llava-1.5-7b-hf style)', () => {
    const c = readVlmConfig(
      dirWith({
        model_type: 'llava',
        text_config: { model_type: 'llama', max_position_embeddings: 4096, rms_norm_eps: 1e-5, vocab_size: 32064 },
        vision_config: {
          model_type: 'clip_vision_model',
          hidden_size: 1024,
          image_size: 336,
          intermediate_size: 4096,
          num_attention_heads: 16,
          num_hidden_layers: 24,
          patch_size: 14,
        },
      }),
    );
    assert.equal(c.text.hiddenSize, 4096);
    assert.equal(c.text.numLayers, 32);
    assert.equal(c.text.numKvHeads, 32);
    assert.equal(c.text.headDim, 128);
    assert.deepEqual(c.text.eosTokenIds, [2]);
    assert.equal(c.vision.featureLayer, 23);
    assert.equal(c.vision.act, 'quick_gelu');
    assert.equal(c.tokensPerImage, 576);
    assert.equal(c.imageTokenId, 32000);
  });

  it('merges eos ids from generation_config.json and a list in text_config; null bos stays null', () => {
    const cfg = fixtureConfig('llava-tiny-siglip-qwen2');
    cfg.text_config.eos_token_id = [2, 3];
    cfg.text_config.bos_token_id = null;
    const c = readVlmConfig(dirWith(cfg, { eos_token_id: [7, 2] }));
    assert.deepEqual(c.text.eosTokenIds, [7, 2, 3]);
    assert.equal(c.text.bosTokenId, null);
  });

  it('reads rope_scaling types linear, dynamic and llama3 (old "type" and new "rope_type" keys)', () => {
    const c = fixtureConfig('llava-tiny-clip-llama');
    c.text_config.rope_scaling = { type: 'linear', factor: 2 };
    assert.deepEqual(readVlmConfig(dirWith(c)).text.ropeScaling, { type: 'linear', factor: 2 });
    c.text_config.rope_scaling = { rope_type: 'dynamic', factor: 4 };
    assert.deepEqual(readVlmConfig(dirWith(c)).text.ropeScaling, { type: 'dynamic', factor: 4 });
    c.text_config.rope_scaling = {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    assert.deepEqual(readVlmConfig(dirWith(c)).text.ropeScaling, {
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    });
  });

  it('llama attention_bias and mlp_bias', () => {
    const cfg = fixtureConfig('llava-tiny-clip-llama');
    cfg.text_config.attention_bias = true;
    cfg.text_config.mlp_bias = true;
    const c = readVlmConfig(dirWith(cfg));
    assert.equal(c.text.qkvBias, true);
    assert.equal(c.text.oProjBias, true);
    assert.equal(c.text.mlpBias, true);
  });

  it('resolves vision_feature_layer from either end and rejects one outside the encoder', () => {
    const cfg = fixtureConfig('llava-tiny-clip-llama');
    cfg.vision_feature_layer = -1;
    assert.equal(readVlmConfig(dirWith(cfg)).vision.featureLayer, 2);
    cfg.vision_feature_layer = 1;
    assert.equal(readVlmConfig(dirWith(cfg)).vision.featureLayer, 1);
    cfg.vision_feature_layer = -3;
    throwsModelError(() => readVlmConfig(dirWith(cfg)), 'vision_feature_layer');
  });

  it('rejects unsupported model types, listing the supported ones', () => {
    const top = fixtureConfig('llava-tiny-clip-llama');
    top.model_type = 'idefics2';
    throwsModelError(() => readVlmConfig(dirWith(top)), 'idefics2', 'supported: llava', 'config.json');

    const vision = fixtureConfig('llava-tiny-clip-llama');
    vision.vision_config.model_type = 'dinov2';
    throwsModelError(() => readVlmConfig(dirWith(vision)), 'dinov2', 'clip_vision_model, siglip_vision_model');

    const text = fixtureConfig('llava-tiny-clip-llama');
    text.text_config.model_type = 'gemma';
    throwsModelError(() => readVlmConfig(dirWith(text)), 'gemma', 'llama, qwen2');
  });

  it('names the file and field that is missing or malformed', () => {
    const missing: Json = fixtureConfig('llava-tiny-clip-llama');
    delete missing.text_config;
    const dir = dirWith(missing);
    throwsModelError(() => readVlmConfig(dir), join(dir, 'config.json'), 'missing field "text_config"');

    const bad = fixtureConfig('llava-tiny-clip-llama');
    bad.text_config.hidden_size = '64';
    throwsModelError(() => readVlmConfig(dirWith(bad)), 'field "text_config.hidden_size"', 'integer');

    const act = fixtureConfig('llava-tiny-clip-llama');
    act.projector_hidden_act = 'mish';
    throwsModelError(() => readVlmConfig(dirWith(act)), 'projector_hidden_act', 'mish');

    const heads = fixtureConfig('llava-tiny-clip-llama');
    heads.text_config.num_key_value_heads = 3;
    throwsModelError(() => readVlmConfig(dirWith(heads)), 'num_key_value_heads');

    const rope = fixtureConfig('llava-tiny-clip-llama');
    rope.text_config.rope_scaling = { rope_type: 'yarn', factor: 8 };
    throwsModelError(() => readVlmConfig(dirWith(rope)), 'rope_scaling', 'yarn', 'llama3');
    rope.text_config.rope_scaling = { rope_type: 'llama3', factor: 8 };
    throwsModelError(() => readVlmConfig(dirWith(rope)), 'rope_scaling.low_freq_factor');
  });

  it('reports malformed JSON and a missing config.json with the path', () => {
    const dir = dirWith('{"model_type": "llava",');
    throwsModelError(() => readVlmConfig(dir), join(dir, 'config.json'), 'not valid JSON');
    const empty = tempDir('config');
    throwsModelError(() => readVlmConfig(empty), join(empty, 'config.json'), 'missing');
    throwsModelError(() => readVlmConfig(dirWith('[1, 2]')), 'JSON object');
  });
});

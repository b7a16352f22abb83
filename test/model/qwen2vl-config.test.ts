import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { readQwen2VlConfig } from '../../src/model/qwen2vl-config.js';
import { dirWith } from '../helpers/config-files.js';

const FIXTURE = join(import.meta.dirname, '../../../test/fixtures/hf-reference/qwen2-vl-tiny');

type Json = Record<string, unknown>;
const fixtureConfig = (): Json => JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));

/** Qwen/Qwen2-VL-2B-Instruct's config.json, less the keys vlm-sieve does not read. */
const QWEN2_VL_2B: Json = {
  model_type: 'qwen2_vl',
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
  hidden_act: 'silu',
  hidden_size: 1536,
  intermediate_size: 8960,
  max_position_embeddings: 32768,
  max_window_layers: 28,
  num_attention_heads: 12,
  num_hidden_layers: 28,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  use_sliding_window: false,
  vision_config: {
    depth: 32,
    embed_dim: 1280,
    mlp_ratio: 4,
    num_heads: 16,
    in_chans: 3,
    hidden_size: 1536,
    patch_size: 14,
    spatial_merge_size: 2,
    spatial_patch_size: 14,
    temporal_patch_size: 2,
  },
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  vocab_size: 151936,
};

describe('readQwen2VlConfig', () => {
  it('reads the qwen2-vl-tiny fixture, with the vision defaults save_pretrained left out', () => {
    const c = readQwen2VlConfig(FIXTURE);
    assert.deepEqual(c.vision, {
      depth: 2,
      embedDim: 32,
      numHeads: 2,
      intermediateSize: 64,
      patchSize: 4,
      temporalPatchSize: 2,
      spatialMergeSize: 2,
      inChannels: 3,
      act: 'quick_gelu',
      outHiddenSize: 32,
    });
    assert.deepEqual(c.text.mropeSection, [2, 3, 3]);
    assert.equal(c.text.family, 'qwen2');
    assert.equal(c.text.headDim, 16);
    assert.equal(c.text.numKvHeads, 1);
    assert.equal(c.text.ropeTheta, 100);
    assert.equal(c.text.tieWordEmbeddings, false);
    assert.deepEqual(c.text.eosTokenIds, [2]);
    assert.deepEqual([c.imageTokenId, c.videoTokenId, c.visionStartTokenId, c.visionEndTokenId], [123, 124, 120, 121]);
  });

  it("reads Qwen2-VL-2B-Instruct's config (rope_scaling type mrope, in_chans, tied embeddings)", () => {
    const c = readQwen2VlConfig(dirWith(QWEN2_VL_2B));
    assert.equal(c.vision.intermediateSize, 5120);
    assert.equal(c.vision.outHiddenSize, 1536);
    assert.equal(c.text.headDim, 128);
    assert.deepEqual(c.text.mropeSection, [16, 24, 24]);
    assert.equal(c.text.tieWordEmbeddings, true);
    assert.equal(c.text.numLayers, 28);
  });

  it('reads the text model from text_config when newer transformers nest it there', () => {
    const { rope_scaling, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, ...rest } =
      QWEN2_VL_2B;
    const nested = readQwen2VlConfig(
      dirWith({
        ...rest,
        text_config: {
          model_type: 'qwen2_vl_text',
          rope_scaling: { rope_type: 'default', mrope_section: [16, 24, 24] },
          hidden_size,
          num_hidden_layers,
          num_attention_heads,
          num_key_value_heads,
          intermediate_size: 8960,
          vocab_size: 151936,
        },
      }),
    );
    assert.deepEqual(nested.text, readQwen2VlConfig(dirWith(QWEN2_VL_2B)).text);
  });

  it('refuses a config without mrope_section or with one that does not fill head_dim', () => {
    const config = fixtureConfig();
    assert.throws(() => readQwen2VlConfig(dirWith({ ...config, rope_scaling: undefined })), ModelError);
    assert.throws(
      () => readQwen2VlConfig(dirWith({ ...config, rope_scaling: { type: 'mrope', mrope_section: [2, 3, 2] } })),
      /must add up to head_dim \/ 2 = 8/,
    );
    assert.throws(() => readQwen2VlConfig(dirWith({ ...config, model_type: 'llava' })), ModelError);
  });
});

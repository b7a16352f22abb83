import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { activation, MISSING_HINT, readGenerationEos, readText } from './config.js';
import { isObject, JsonFields, readJsonObject } from './json-file.js';
import type { Activation, TextConfig } from './vlm-config.js';

/** Qwen2-VL's own ViT (Conv3d patches, 2-D RoPE, full attention per temporal slice) and its PatchMerger. */
export interface Qwen2VlVisionConfig {
  depth: number;
  embedDim: number;
  numHeads: number;
  /** MLP width: embed_dim · mlp_ratio. */
  intermediateSize: number;
  patchSize: number;
  temporalPatchSize: number;
  /** Patches per side merged into one LLM token (2: a 2×2 group). */
  spatialMergeSize: number;
  inChannels: number;
  act: Activation;
  /** The merger's output width (vision_config.hidden_size), which is the text model's hidden size. */
  outHiddenSize: number;
}

export interface Qwen2VlConfig {
  modelType: 'qwen2_vl';
  vision: Qwen2VlVisionConfig;
  /** The Qwen2 text model; `mropeSection` splits each half of head_dim's rotary pairs between t, h and w. */
  text: TextConfig & { mropeSection: [number, number, number] };
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
}

/* Defaults of transformers 4.46's Qwen2VLVisionConfig / Qwen2VLConfig (the 72B sizes), under their JSON keys. */
const VISION_DEFAULTS = {
  depth: 32,
  embed_dim: 1280,
  hidden_size: 3584,
  hidden_act: 'quick_gelu',
  mlp_ratio: 4,
  num_heads: 16,
  patch_size: 14,
  spatial_merge_size: 2,
  temporal_patch_size: 2,
};
const TEXT_DEFAULTS = {
  vocab_size: 152064,
  hidden_size: 8192,
  intermediate_size: 29568,
  num_hidden_layers: 80,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  hidden_act: 'silu',
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-5,
  rope_theta: 1e6,
  tie_word_embeddings: false,
};

/**
 * Reads a Hugging Face `qwen2_vl` config.json (and generation_config.json when present). Older transformers
 * write the text model's keys at the top level; newer ones nest them in `text_config`.
 */
export function readQwen2VlConfig(dir: string): Qwen2VlConfig {
  const file = join(dir, 'config.json');
  const root = new JsonFields(file, readJsonObject(file, MISSING_HINT));
  const modelType = root.str('model_type');
  if (modelType !== 'qwen2_vl') {
    throw new ModelError(
      `${file}: model_type "${modelType}" is not qwen2_vl`,
      'use a Qwen2-VL checkpoint such as Qwen/Qwen2-VL-2B-Instruct',
    );
  }
  // A key in text_config wins over the same key at the top level; tie_word_embeddings is the model's, at the top.
  const nested = root.has('text_config') ? root.sub('text_config').obj : {};
  const textObj: Record<string, unknown> = { ...TEXT_DEFAULTS, ...root.obj, ...nested, model_type: 'qwen2' };
  if (root.has('tie_word_embeddings')) textObj.tie_word_embeddings = root.obj.tie_word_embeddings;
  const textFields = new JsonFields(file, textObj);
  const mropeSection = readMropeSection(textFields);
  const text = { ...readText(textFields, readGenerationEos(dir)), mropeSection };
  if (mropeSection.reduce((a, b) => a + b, 0) !== text.headDim / 2) {
    textFields.fail(
      'rope_scaling',
      `mrope_section [${mropeSection}] must add up to head_dim / 2 = ${text.headDim / 2}`,
    );
  }

  const vision = readVision(root);
  if (vision.outHiddenSize !== text.hiddenSize) {
    root.fail(
      'vision_config.hidden_size',
      `(${vision.outHiddenSize}) must equal the text hidden_size (${text.hiddenSize})`,
    );
  }
  return {
    modelType: 'qwen2_vl',
    vision,
    text,
    imageTokenId: root.int('image_token_id', 151655, 0),
    videoTokenId: root.int('video_token_id', 151656, 0),
    visionStartTokenId: root.int('vision_start_token_id', 151652, 0),
    visionEndTokenId: root.int('vision_end_token_id', 151653, 0),
  };
}

function readMropeSection(f: JsonFields): [number, number, number] {
  const scaling = f.has('rope_scaling') ? f.sub('rope_scaling') : null;
  const section = scaling?.obj.mrope_section;
  if (!scaling || !Array.isArray(section)) {
    return f.fail('rope_scaling', 'must hold mrope_section (the t, h, w split of the rotary frequencies)');
  }
  const type = scaling.str('rope_type', scaling.str('type', 'default'));
  // transformers 4.46 renames "mrope" to "default" when it loads the config; both mean plain M-RoPE.
  if (type !== 'mrope' && type !== 'default') f.fail('rope_scaling', `type "${type}" is not supported with M-RoPE`);
  if (section.length !== 3 || !section.every((x) => Number.isInteger(x) && x > 0)) {
    f.fail('rope_scaling', `mrope_section must be 3 positive integers, got ${JSON.stringify(section)}`);
  }
  return [section[0], section[1], section[2]];
}

function readVision(root: JsonFields): Qwen2VlVisionConfig {
  const raw = root.has('vision_config') ? root.obj.vision_config : {};
  if (!isObject(raw)) return root.fail('vision_config', 'must be an object');
  const f = new JsonFields(root.file, { ...VISION_DEFAULTS, ...raw }, 'vision_config.');
  const embedDim = f.int('embed_dim');
  const numHeads = f.int('num_heads');
  if (embedDim % numHeads !== 0 || (embedDim / numHeads) % 4 !== 0) {
    f.fail('num_heads', `(${numHeads}) must split embed_dim (${embedDim}) into heads of a multiple of 4 channels`);
  }
  const intermediateSize = Math.floor(embedDim * f.positive('mlp_ratio'));
  return {
    depth: f.int('depth'),
    embedDim,
    numHeads,
    intermediateSize,
    patchSize: f.int('patch_size'),
    temporalPatchSize: f.int('temporal_patch_size'),
    spatialMergeSize: f.int('spatial_merge_size'),
    // Older configs call it in_chans.
    inChannels: f.int('in_channels', f.has('in_chans') ? f.int('in_chans') : 3),
    act: activation(f, 'hidden_act', 'quick_gelu'),
    outHiddenSize: f.int('hidden_size'),
  };
}

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { JsonFields, readJsonObject } from './json-file.js';
import type {
  Activation,
  RopeScaling,
  TextConfig,
  TextFamily,
  VisionConfig,
  VisionFamily,
  VlmConfig,
} from './vlm-config.js';

export const MISSING_HINT =
  'download the complete Hugging Face checkpoint (config.json, *.safetensors, tokenizer files)';

const VISION_MODEL_TYPES: Record<string, VisionFamily> = { clip_vision_model: 'clip', siglip_vision_model: 'siglip' };
const TEXT_MODEL_TYPES: Record<string, TextFamily> = { llama: 'llama', qwen2: 'qwen2' };

const ACTIVATIONS: Record<string, Activation> = {
  gelu: 'gelu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  quick_gelu: 'quick_gelu',
  silu: 'silu',
  swish: 'silu',
  relu: 'relu',
};

/*
 * Defaults are those of the transformers 4.46 config classes: published checkpoints such as
 * llava-hf/llava-1.5-7b-hf leave most text_config / vision_config sizes out and rely on them.
 */
const VISION_DEFAULTS = {
  clip: { hidden: 768, intermediate: 3072, layers: 12, heads: 12, image: 224, patch: 32, act: 'quick_gelu', eps: 1e-5 },
  siglip: {
    hidden: 768,
    intermediate: 3072,
    layers: 12,
    heads: 12,
    image: 224,
    patch: 16,
    act: 'gelu_pytorch_tanh',
    eps: 1e-6,
  },
} as const;

const TEXT_DEFAULTS = {
  llama: { vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32, maxPos: 2048, bos: 1, eos: [2] },
  qwen2: { vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, maxPos: 32768, bos: null, eos: [] },
} as const;

/** Reads a Hugging Face `llava` config.json (and generation_config.json when present). */
export function readVlmConfig(dir: string): VlmConfig {
  const file = join(dir, 'config.json');
  const root = new JsonFields(file, readJsonObject(file, MISSING_HINT));

  const modelType = root.str('model_type');
  if (modelType !== 'llava') {
    throw new ModelError(
      `${file}: model_type "${modelType}" is not supported; supported: llava`,
      'use a LLaVA-format checkpoint (CLIP or SigLIP vision tower, Llama or Qwen2 language model)',
    );
  }

  const selectStrategy = root.str('vision_feature_select_strategy', 'default');
  if (selectStrategy !== 'default' && selectStrategy !== 'full') {
    return root.fail('vision_feature_select_strategy', `must be "default" or "full", got "${selectStrategy}"`);
  }
  const vision = readVision(root.sub('vision_config'), root, selectStrategy);
  const text = readText(root.sub('text_config'), readGenerationEos(dir));

  const positions = vision.gridSize ** 2 + (vision.hasClassToken ? 1 : 0);
  return {
    modelType: 'llava',
    vision,
    text,
    projector: {
      act: activation(root, 'projector_hidden_act', 'gelu'),
      inputSize: vision.hiddenSize,
      hiddenSize: text.hiddenSize,
      outputSize: text.hiddenSize,
      bias: root.bool('multimodal_projector_bias', true),
    },
    imageTokenId: root.int('image_token_index', 32000, 0),
    // HF's 'default' strategy drops the first token whatever it is (for SigLIP that is a patch).
    tokensPerImage: positions - (selectStrategy === 'default' ? 1 : 0),
  };
}

/**
 * A CLIP or SigLIP `vision_config` and the top level's feature layer. Families differ in their defaults:
 * llava reads hidden_states[-2] of a CLIP tower, LLaVA-OneVision the last layer of a SigLIP one.
 */
export function readVision(
  f: JsonFields,
  root: JsonFields,
  selectStrategy: VisionConfig['selectStrategy'],
  defaults: { modelType: string; featureLayer: number } = { modelType: 'clip_vision_model', featureLayer: -2 },
): VisionConfig {
  const modelType = f.str('model_type', defaults.modelType);
  const family = VISION_MODEL_TYPES[modelType];
  if (!family) {
    const supported = Object.keys(VISION_MODEL_TYPES).join(', ');
    throw new ModelError(
      `${f.file}: vision_config.model_type "${modelType}" is not supported; supported: ${supported}`,
      'use a LLaVA checkpoint with a CLIP or SigLIP vision tower',
    );
  }
  const d = VISION_DEFAULTS[family];
  const hiddenSize = f.int('hidden_size', d.hidden);
  const numHeads = f.int('num_attention_heads', d.heads);
  if (hiddenSize % numHeads !== 0)
    f.fail('num_attention_heads', `(${numHeads}) must divide hidden_size (${hiddenSize})`);
  const imageSize = f.int('image_size', d.image);
  const patchSize = f.int('patch_size', d.patch);
  // A valid-padding patch conv drops what is left over (SigLIP 384/14: 27×27 patches, 6 pixels unused).
  if (patchSize > imageSize) f.fail('patch_size', `(${patchSize}) is larger than image_size (${imageSize})`);
  const numLayers = f.int('num_hidden_layers', d.layers);

  // hidden_states has numLayers + 1 entries (0 = embeddings); a negative index counts from the end.
  const layer = root.signedInt('vision_feature_layer', defaults.featureLayer);
  const featureLayer = layer < 0 ? numLayers + 1 + layer : layer;
  if (featureLayer < 1 || featureLayer > numLayers) {
    root.fail(
      'vision_feature_layer',
      `(${layer}) must select an encoder layer output, 1..${numLayers} or -1..-${numLayers}`,
    );
  }
  return {
    family,
    hiddenSize,
    intermediateSize: f.int('intermediate_size', d.intermediate),
    numLayers,
    numHeads,
    imageSize,
    patchSize,
    numChannels: f.int('num_channels', 3),
    layerNormEps: f.positive('layer_norm_eps', d.eps),
    act: activation(f, 'hidden_act', d.act),
    hasClassToken: family === 'clip',
    featureLayer,
    selectStrategy,
    gridSize: Math.floor(imageSize / patchSize),
  };
}

export function readText(f: JsonFields, generationEos: number[]): TextConfig {
  const modelType = f.str('model_type', 'llama');
  const family = TEXT_MODEL_TYPES[modelType];
  if (!family) {
    const supported = Object.keys(TEXT_MODEL_TYPES).join(', ');
    throw new ModelError(
      `${f.file}: text_config.model_type "${modelType}" is not supported; supported: ${supported}`,
      'use a LLaVA checkpoint with a Llama or Qwen2 language model',
    );
  }
  const d = TEXT_DEFAULTS[family];
  const hiddenSize = f.int('hidden_size', d.hidden);
  const numHeads = f.int('num_attention_heads', d.heads);
  const numKvHeads = f.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0)
    f.fail('num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const headDim = f.int('head_dim', Math.floor(hiddenSize / numHeads));
  if (!f.has('head_dim') && hiddenSize % numHeads !== 0)
    f.fail('num_attention_heads', `(${numHeads}) must divide hidden_size (${hiddenSize})`);

  if (family === 'qwen2' && f.bool('use_sliding_window', false)) f.fail('use_sliding_window', 'true is not supported');

  const attentionBias = family === 'llama' && f.bool('attention_bias', false);
  // An explicit null means "none"; only an absent key takes the class default.
  const bos = !('bos_token_id' in f.obj) ? d.bos : f.has('bos_token_id') ? f.int('bos_token_id', undefined, 0) : null;
  const configEos = 'eos_token_id' in f.obj ? f.idList('eos_token_id') : d.eos;
  return {
    family,
    hiddenSize,
    intermediateSize: f.int('intermediate_size', d.intermediate),
    numLayers: f.int('num_hidden_layers', d.layers),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: f.int('vocab_size', d.vocab),
    rmsNormEps: f.positive('rms_norm_eps', 1e-6),
    ropeTheta: f.positive('rope_theta', 10000),
    ropeScaling: readRopeScaling(f),
    qkvBias: family === 'qwen2' || attentionBias,
    oProjBias: attentionBias,
    mlpBias: family === 'llama' && f.bool('mlp_bias', false),
    act: activation(f, 'hidden_act', 'silu'),
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    maxPositionEmbeddings: f.int('max_position_embeddings', d.maxPos),
    bosTokenId: bos,
    // generate() stops on generation_config's ids; keep the config's too when they differ.
    eosTokenIds: [...new Set([...generationEos, ...configEos])],
  };
}

const ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3', 'mrope'];

/** `rope_scaling` (old configs name the type `type`, newer ones `rope_type`; Qwen2-VL's M-RoPE is plain RoPE here). */
function readRopeScaling(f: JsonFields): RopeScaling {
  if (!f.has('rope_scaling')) return { type: 'default' };
  const s = f.sub('rope_scaling');
  const type = s.str('rope_type', s.str('type', 'default'));
  if (!ROPE_TYPES.includes(type)) {
    f.fail('rope_scaling', `type "${type}" is not supported (supported: ${ROPE_TYPES.join(', ')})`);
  }
  if (type === 'linear' || type === 'dynamic') return { type, factor: s.positive('factor') };
  if (type === 'llama3') {
    return {
      type,
      factor: s.positive('factor'),
      lowFreqFactor: s.positive('low_freq_factor'),
      highFreqFactor: s.positive('high_freq_factor'),
      originalMaxPositions: s.int('original_max_position_embeddings'),
    };
  }
  return { type: 'default' };
}

export function readGenerationEos(dir: string): number[] {
  const file = join(dir, 'generation_config.json');
  if (!existsSync(file)) return [];
  return new JsonFields(file, readJsonObject(file, MISSING_HINT)).idList('eos_token_id');
}

export function activation(f: JsonFields, key: string, fallback: string): Activation {
  const name = f.str(key, fallback);
  const act = ACTIVATIONS[name];
  if (!act) f.fail(key, `"${name}" is not a supported activation (${Object.keys(ACTIVATIONS).join(', ')})`);
  return act;
}

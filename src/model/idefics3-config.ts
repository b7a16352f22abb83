import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { activation, MISSING_HINT, readGenerationEos, readText } from './config.js';
import { JsonFields, readJsonObject } from './json-file.js';
import type { Activation, TextConfig } from './vlm-config.js';

/** `idefics3` (SmolVLM v1, transformers ≥ 4.46) and `smolvlm` (SmolVLM2, ≥ 4.50) share one modelling. */
export type Idefics3ModelType = 'idefics3' | 'smolvlm';

const MODEL_TYPES: readonly string[] = ['idefics3', 'smolvlm'];
const VISION_MODEL_TYPES: readonly string[] = ['idefics3', 'idefics3_vision', 'smolvlm_vision'];

/** The Idefics3 vision transformer: SigLIP layers, bucketised position ids, a post-layernorm and no head. */
export interface Idefics3VisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Side of one tile in pixels (the processor's max_image_size). */
  imageSize: number;
  patchSize: number;
  numChannels: number;
  layerNormEps: number;
  act: Activation;
  /** Patches per tile side, imageSize / patchSize rounded down (the valid-padding conv drops the rest). */
  patchesPerSide: number;
}

export interface Idefics3Config {
  modelType: Idefics3ModelType;
  vision: Idefics3VisionConfig;
  text: TextConfig;
  /** Pixel shuffle: each LLM token is a scale×scale group of patches. */
  scaleFactor: number;
  /** Width of one pixel-shuffled row, the connector's input: vision hidden · scale². */
  featureWidth: number;
  imageTokenId: number;
  /** LLM tokens per tile side: patchesPerSide / scale. A tile's token grid is tokensPerSide². */
  tokensPerSide: number;
  /** LLM tokens per tile (the processor's image_seq_len). */
  tokensPerImage: number;
}

/* Defaults of transformers' Idefics3VisionConfig / Idefics3Config (SmolVLM's are the same). */
const VISION_DEFAULTS = {
  hidden: 1152,
  intermediate: 3072,
  layers: 12,
  heads: 16,
  image: 224,
  patch: 32,
  act: 'gelu_pytorch_tanh',
  eps: 1e-6,
} as const;
const DEFAULT_IMAGE_TOKEN_ID = 128257;
const DEFAULT_SCALE_FACTOR = 2;

export function isIdefics3ModelType(modelType: string): modelType is Idefics3ModelType {
  return MODEL_TYPES.includes(modelType);
}

/** Reads an `idefics3` / `smolvlm` config.json (and generation_config.json when present). */
export function readIdefics3Config(dir: string): Idefics3Config {
  const file = join(dir, 'config.json');
  const root = new JsonFields(file, readJsonObject(file, MISSING_HINT));
  const modelType = root.str('model_type');
  if (!isIdefics3ModelType(modelType)) {
    throw new ModelError(
      `${file}: model_type "${modelType}" is not an Idefics3 model; expected ${MODEL_TYPES.join(' or ')}`,
      'use a SmolVLM / SmolVLM2 (Idefics3) checkpoint such as HuggingFaceTB/SmolVLM2-256M-Video-Instruct',
    );
  }
  const vision = readVision(root.sub('vision_config'));
  const scaleFactor = root.int('scale_factor', DEFAULT_SCALE_FACTOR);
  if (vision.patchesPerSide % scaleFactor !== 0) {
    root.fail(
      'scale_factor',
      `(${scaleFactor}) must divide the ${vision.patchesPerSide} patches per side of a tile for the pixel shuffle`,
    );
  }
  // Idefics3ForConditionalGeneration ties lm_head to the embeddings on the top-level flag, not text_config's.
  const text: TextConfig = {
    ...readText(root.sub('text_config'), readGenerationEos(dir)),
    tieWordEmbeddings: root.bool('tie_word_embeddings', false),
  };
  const tokensPerSide = vision.patchesPerSide / scaleFactor;
  return {
    modelType,
    vision,
    text,
    scaleFactor,
    featureWidth: vision.hiddenSize * scaleFactor * scaleFactor,
    imageTokenId: root.int('image_token_id', DEFAULT_IMAGE_TOKEN_ID, 0),
    tokensPerSide,
    tokensPerImage: tokensPerSide * tokensPerSide,
  };
}

function readVision(f: JsonFields): Idefics3VisionConfig {
  const modelType = f.str('model_type', 'idefics3_vision');
  if (!VISION_MODEL_TYPES.includes(modelType)) {
    throw new ModelError(
      `${f.file}: vision_config.model_type "${modelType}" is not an Idefics3 vision tower`,
      `expected one of ${VISION_MODEL_TYPES.join(', ')}: the config does not belong to a SmolVLM checkpoint`,
    );
  }
  const d = VISION_DEFAULTS;
  const hiddenSize = f.int('hidden_size', d.hidden);
  const numHeads = f.int('num_attention_heads', d.heads);
  if (hiddenSize % numHeads !== 0)
    f.fail('num_attention_heads', `(${numHeads}) must divide hidden_size (${hiddenSize})`);
  const imageSize = f.int('image_size', d.image);
  const patchSize = f.int('patch_size', d.patch);
  if (patchSize > imageSize) f.fail('patch_size', `(${patchSize}) is larger than image_size (${imageSize})`);
  return {
    hiddenSize,
    intermediateSize: f.int('intermediate_size', d.intermediate),
    numLayers: f.int('num_hidden_layers', d.layers),
    numHeads,
    imageSize,
    patchSize,
    numChannels: f.int('num_channels', 3),
    layerNormEps: f.positive('layer_norm_eps', d.eps),
    act: activation(f, 'hidden_act', d.act),
    patchesPerSide: Math.floor(imageSize / patchSize),
  };
}

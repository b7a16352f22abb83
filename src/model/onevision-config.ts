import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { activation, MISSING_HINT, readGenerationEos, readText, readVision } from './config.js';
import { JsonFields, readJsonObject } from './json-file.js';
import type { ProjectorConfig, TextConfig, VisionConfig } from './vlm-config.js';

/** A [height, width] resolution in pixels. */
export type Resolution = [number, number];

/** A Hugging Face `llava_onevision` checkpoint (SigLIP + MLP projector + Qwen2), normalised. */
export interface OnevisionConfig {
  modelType: 'llava_onevision';
  /** The SigLIP tower: no class token, strategy 'full', no post_layernorm on the feature layer. */
  vision: VisionConfig;
  text: TextConfig;
  /** linear_1 (vision hidden → text hidden), activation, linear_2 (text hidden → text hidden). */
  projector: ProjectorConfig;
  imageTokenId: number;
  videoTokenId: number;
  /** Resolutions an image may be tiled to (anyres), [height, width] each a multiple of the tile size. */
  imageGridPinpoints: Resolution[];
  /** `anyres_max_N`: the unpadded tile grid is shrunk when it holds more than N tiles' worth of patches. */
  maxAnyresTiles: number;
  /** Patches per tile side (27 for SigLIP 384/14); a tile gives patchGrid² tokens. */
  patchGrid: number;
  /** Tokens per video frame side after the bilinear pooling: ceil(patchGrid / 2). */
  pooledGrid: number;
}

/** LlavaOnevisionConfig's defaults: the 0.5B/7B/72B checkpoints' pinpoints are 384 · {1..6}². */
const DEFAULT_PINPOINTS: Resolution[] = [1, 2, 3, 4, 5, 6].flatMap((h) =>
  [1, 2, 3, 4, 5, 6].map((w): Resolution => [384 * h, 384 * w]),
);

/** Reads a Hugging Face `llava_onevision` config.json (and generation_config.json when present). */
export function readOnevisionConfig(dir: string): OnevisionConfig {
  const file = join(dir, 'config.json');
  const root = new JsonFields(file, readJsonObject(file, MISSING_HINT));
  const modelType = root.str('model_type');
  if (modelType !== 'llava_onevision') {
    throw new ModelError(
      `${file}: model_type "${modelType}" is not llava_onevision`,
      'use a LLaVA-OneVision checkpoint such as llava-hf/llava-onevision-qwen2-0.5b-ov-hf',
    );
  }
  const vision = readSiglip(root);
  const text = readText(root.sub('text_config'), readGenerationEos(dir));
  return {
    modelType: 'llava_onevision',
    vision,
    text,
    projector: {
      act: activation(root, 'projector_hidden_act', 'gelu'),
      inputSize: vision.hiddenSize,
      hiddenSize: text.hiddenSize,
      outputSize: text.hiddenSize,
      bias: root.bool('multimodal_projector_bias', true),
    },
    imageTokenId: tokenId(root, 'image_token_index', 'image_token_id', 151646),
    videoTokenId: tokenId(root, 'video_token_index', 'video_token_id', 151647),
    imageGridPinpoints: readPinpoints(root, 'image_grid_pinpoints', vision.imageSize) ?? DEFAULT_PINPOINTS,
    maxAnyresTiles: readAnyresMax(root),
    patchGrid: vision.gridSize,
    pooledGrid: Math.ceil(vision.gridSize / 2),
  };
}

function readSiglip(root: JsonFields): VisionConfig {
  const f = root.sub('vision_config');
  const modelType = f.str('model_type', 'siglip_vision_model');
  if (modelType !== 'siglip_vision_model') {
    throw new ModelError(
      `${f.file}: vision_config.model_type "${modelType}" is not supported for llava_onevision; ` +
        'supported: siglip_vision_model',
      'use a LLaVA-OneVision checkpoint with its SigLIP vision tower',
    );
  }
  if (Array.isArray(root.obj.vision_feature_layer)) {
    root.fail('vision_feature_layer', 'is a list of layers; vlm-sieve reads one feature layer');
  }
  const strategy = root.str('vision_feature_select_strategy', 'full');
  // 'default' drops a patch, and the anyres packing then no longer has a square grid per tile (HF raises).
  if (strategy !== 'full') root.fail('vision_feature_select_strategy', `"${strategy}" is not supported (only "full")`);
  // LlavaOnevisionConfig's defaults: the last layer, every token.
  return readVision(f, root, 'full', { modelType, featureLayer: -1 });
}

function tokenId(root: JsonFields, key: string, alias: string, fallback: number): number {
  return root.int(root.has(key) ? key : alias, fallback, 0);
}

/** image_grid_pinpoints as [height, width] pairs, each a positive multiple of the tile size; null when absent. */
export function readPinpoints(f: JsonFields, key: string, tile: number): Resolution[] | null {
  if (!f.has(key)) return null;
  const v = f.obj[key];
  const ok =
    Array.isArray(v) &&
    v.length > 0 &&
    v.every(
      (p) =>
        Array.isArray(p) &&
        p.length === 2 &&
        p.every((x) => Number.isInteger(x) && x > 0 && (x as number) % tile === 0),
    );
  if (!ok) f.fail(key, `must be a list of [height, width] pairs, each a positive multiple of ${tile}`);
  return (v as number[][]).map(([h, w]): Resolution => [h, w]);
}

function readAnyresMax(root: JsonFields): number {
  const value = root.str('vision_aspect_ratio', 'anyres_max_9');
  const match = /^anyres_max_(\d+)$/.exec(value);
  if (!match || Number(match[1]) < 1) {
    return root.fail('vision_aspect_ratio', `"${value}" is not supported (only "anyres_max_N", N ≥ 1)`);
  }
  return Number(match[1]);
}

import { ModelError } from '../errors.js';
import type { WeightReader } from './layers.js';
import type { TextKeys } from './llm-decoder.js';

export interface Idefics3Keys extends TextKeys {
  /** Prefix of the vision transformer (`embeddings`, `encoder.layers`, `post_layernorm`). */
  vision: string;
  /** The connector's Linear (no bias) after the pixel shuffle. */
  connector: string;
}

const KEYS: Idefics3Keys = {
  vision: 'model.vision_model',
  connector: 'model.connector.modality_projection.proj',
  text: 'model.text_model',
  lmHead: 'lm_head.weight',
};

/**
 * Idefics3ForConditionalGeneration (4.46) and SmolVLMForConditionalGeneration (≥ 4.50, also after the 4.52
 * key refactor, which had no conversion mapping for them) save the same names: `model.vision_model.*`,
 * `model.connector.*`, `model.text_model.*` and `lm_head.weight`.
 */
export function idefics3Keys(reader: WeightReader): Idefics3Keys {
  const probe = `${KEYS.text}.embed_tokens.weight`;
  if (!reader.has(probe)) {
    throw new ModelError(
      `the checkpoint has no tensor ${probe}`,
      'an Idefics3 / SmolVLM checkpoint saved by transformers has model.vision_model.*, model.connector.* and ' +
        'model.text_model.*: download the complete checkpoint again',
    );
  }
  return KEYS;
}

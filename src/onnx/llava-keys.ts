import type { WeightReader } from './layers.js';
import type { TextKeys } from './llm-decoder.js';

export interface LlavaKeys extends TextKeys {
  /** Prefix of the vision tower's `vision_model` (e.g. `vision_tower.vision_model`). */
  vision: string;
  projector: string;
}

/**
 * transformers ≤ 4.51 saves llava as `language_model.model.*` / `vision_tower.*`; later versions as
 * `model.language_model.*` / `model.vision_tower.*` with `lm_head` at the top. Both are read as they are.
 */
export function llavaKeys(reader: WeightReader): LlavaKeys {
  if (reader.has('model.language_model.embed_tokens.weight')) {
    return {
      vision: 'model.vision_tower.vision_model',
      projector: 'model.multi_modal_projector',
      text: 'model.language_model',
      lmHead: 'lm_head.weight',
    };
  }
  return {
    vision: 'vision_tower.vision_model',
    projector: 'multi_modal_projector',
    text: 'language_model.model',
    lmHead: 'language_model.lm_head.weight',
  };
}

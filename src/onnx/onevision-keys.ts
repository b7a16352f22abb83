import type { WeightReader } from './layers.js';
import type { TextKeys } from './llm-decoder.js';

export interface OnevisionKeys {
  /** Prefix of the SigLIP tower's `vision_model`. */
  vision: string;
  projector: string;
  /** The learnt row that ends every row of an image's tile grid, and every video. */
  imageNewline: string;
  /** The text model's key prefixes, as the decoder segments take them. */
  textKeys: TextKeys;
}

/**
 * transformers ≤ 4.51 saves llava_onevision as `language_model.model.*`, `vision_tower.*`,
 * `image_newline`; later versions under `model.*` with `lm_head` at the top. Both are read as they are.
 */
export function onevisionKeys(reader: WeightReader): OnevisionKeys {
  if (reader.has('model.language_model.embed_tokens.weight')) {
    return {
      vision: 'model.vision_tower.vision_model',
      projector: 'model.multi_modal_projector',
      imageNewline: 'model.image_newline',
      textKeys: { text: 'model.language_model', lmHead: 'lm_head.weight' },
    };
  }
  return {
    vision: 'vision_tower.vision_model',
    projector: 'multi_modal_projector',
    imageNewline: 'image_newline',
    textKeys: { text: 'language_model.model', lmHead: 'language_model.lm_head.weight' },
  };
}

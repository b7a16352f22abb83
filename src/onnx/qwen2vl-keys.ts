import type { WeightReader } from './layers.js';
import type { TextKeys } from './llm-decoder.js';

export interface Qwen2VlKeys extends TextKeys {
  /** Prefix of the ViT and its merger (`patch_embed`, `blocks`, `merger`). */
  vision: string;
}

/**
 * transformers ≤ 4.51 saves Qwen2-VL as `visual.*` / `model.*`; later versions as `model.visual.*` /
 * `model.language_model.*`. `lm_head` is at the top in both (absent when the embeddings are tied).
 */
export function qwen2VlKeys(reader: WeightReader): Qwen2VlKeys {
  if (reader.has('model.language_model.embed_tokens.weight')) {
    return { vision: 'model.visual', text: 'model.language_model', lmHead: 'lm_head.weight' };
  }
  return { vision: 'visual', text: 'model', lmHead: 'lm_head.weight' };
}

import type { ModelConfig } from '../model/vlm-config.js';
import { idefics3Family } from './idefics3-family.js';
import { llavaFamily } from './llava-family.js';
import type { FamilyContext, ModelFamily } from './model-family.js';
import { onevisionFamily } from './onevision-family.js';
import { qwen2VlFamily } from './qwen2vl-family.js';

/** The main-thread half of the checkpoint's architecture. */
export function familyFor(config: ModelConfig, ctx: FamilyContext): ModelFamily {
  switch (config.modelType) {
    case 'llava':
      return llavaFamily(config, ctx);
    case 'qwen2_vl':
      return qwen2VlFamily(config, ctx);
    case 'idefics3':
    case 'smolvlm':
      return idefics3Family(config, ctx);
    case 'llava_onevision':
      return onevisionFamily(config, ctx);
  }
}

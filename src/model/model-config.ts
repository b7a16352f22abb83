import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { MISSING_HINT, readVlmConfig } from './config.js';
import { readIdefics3Config } from './idefics3-config.js';
import { JsonFields, readJsonObject } from './json-file.js';
import { readOnevisionConfig } from './onevision-config.js';
import { readQwen2VlConfig } from './qwen2vl-config.js';
import type { ModelConfig } from './vlm-config.js';

const READERS: Record<string, (dir: string) => ModelConfig> = {
  llava: readVlmConfig,
  qwen2_vl: readQwen2VlConfig,
  idefics3: readIdefics3Config,
  smolvlm: readIdefics3Config,
  llava_onevision: readOnevisionConfig,
};

/** Reads config.json with the reader of its `model_type`. */
export function readModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  const modelType = new JsonFields(file, readJsonObject(file, MISSING_HINT)).str('model_type');
  const read = READERS[modelType];
  if (!read) {
    throw new ModelError(
      `${file}: model_type "${modelType}" is not supported; supported: ${Object.keys(READERS).join(', ')}`,
      'use a LLaVA-format checkpoint (CLIP or SigLIP vision tower, Llama or Qwen2 language model), ' +
        'Qwen2-VL or LLaVA-OneVision',
    );
  }
  return read(dir);
}

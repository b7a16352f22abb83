import { buildPrompt } from '../engine/prompt.js';
import { MediaError } from '../errors.js';
import { fitFor } from '../media/frame-plan.js';
import { readProcessorConfig } from '../model/processor-config.js';
import type { VlmConfig } from '../model/vlm-config.js';
import { preprocessBatch } from '../vision/preprocess.js';
import type { FamilyFactory } from './model-family.js';

/** Frames encoded per vision-graph run: bounds the [frames, heads, N, N] attention of the tower. */
const FRAMES_PER_RUN = 8;

/**
 * LLaVA (CLIP/SigLIP + MLP projector + Llama/Qwen2): a frame is a unit of gridSize² tokens (the select
 * strategy applied), each frame one image item of the chat template.
 */
export const llavaFamily: FamilyFactory<VlmConfig> = (config, { dir, tokenizer, chatTemplate }) => {
  const processor = readProcessorConfig(dir, config.vision);
  const grid = config.vision.gridSize;
  const plan = (frames: number) => ({ units: frames, gridRows: grid, gridCols: grid });
  return {
    decodeFit: fitFor(processor),
    overlay: { imageSize: config.vision.imageSize, gridSize: grid },
    plan,
    async prepare(frames) {
      const batch = preprocessBatch(frames, processor);
      const size = config.vision.imageSize;
      if (batch.dims[2] !== size || batch.dims[3] !== size) {
        throw new MediaError(
          `frames preprocess to ${batch.dims[3]}×${batch.dims[2]} but the vision encoder takes ${size}×${size}`,
          "this checkpoint's preprocessor_config.json does not centre-crop: give square frames, " +
            'or add do_center_crop with crop_size to it',
        );
      }
      return {
        ...plan(frames.length),
        perUnit: { pixel_values: { type: 'float32', data: batch.data, dims: [...batch.dims] } },
        shared: {},
        batch: FRAMES_PER_RUN,
      };
    },
    layout(frames, _plan, question) {
      return buildPrompt(tokenizer, chatTemplate, config.imageTokenId, config.tokensPerImage, frames, question).layout;
    },
    placeholders() {
      return [
        { id: config.imageTokenId, text: tokenizer.idToToken(config.imageTokenId) ?? `token ${config.imageTokenId}` },
      ];
    },
  };
};

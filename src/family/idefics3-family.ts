import { IDEFICS3_TOKENS, idefics3Layout, idefics3Prompt } from '../engine/idefics3-prompt.js';
import { ModelError } from '../errors.js';
import type { Idefics3Config } from '../model/idefics3-config.js';
import { readIdefics3ProcessorConfig } from '../model/idefics3-processor-config.js';
import { VISION_IO } from '../onnx/vision-encoder.js';
import { processIdefics3Video } from '../vision/idefics3-processor.js';
import type { FamilyFactory, PromptFrame } from './model-family.js';

/** Attention scratch one vision-graph run may use: a unit's [heads, P, P] probabilities, a few copies. */
const ATTENTION_BYTES_PER_RUN = 256 * 2 ** 20;

/**
 * Idefics3 / SmolVLM2 on video, the SmolVLM2 way: every frame is resized (never split) to one
 * max_image_size square, a unit of tokensPerSide² pixel-shuffled tokens, and the prompt is SmolVLM2's video
 * layout (the frame count in words, the duration, `Frame from MM:SS:` and the frame's image tokens per
 * frame) in transformers' SmolVLM chat template. A single image is a one-frame video: the image path's
 * tile split would give a different number of units per image than the engine's one grid per frame plans.
 */
export const idefics3Family: FamilyFactory<Idefics3Config> = (config, { dir, tokenizer }) => {
  const processor = readIdefics3ProcessorConfig(dir, config);
  const side = config.tokensPerSide;
  const plan = (frames: number) => ({ units: frames, gridRows: side, gridCols: side });
  const specialId = (token: string): number => {
    const id = tokenizer.tokenToId(token);
    if (id === undefined) {
      throw new ModelError(
        `the tokenizer has no ${token} token, which SmolVLM prompts need`,
        "use the checkpoint's own tokenizer.json (SmolVLM's has <fake_token_around_image>, <global-img>, <image>)",
      );
    }
    return id;
  };
  return {
    decodeFit: undefined,
    plan,
    async prepare(frames) {
      const input = processIdefics3Video(frames, processor, side);
      const S = config.vision.imageSize;
      const patches = config.vision.patchesPerSide ** 2;
      const perRun = config.vision.numHeads * patches * patches * 4 * 3;
      return {
        ...plan(input.units),
        perUnit: { [VISION_IO.pixels]: { type: 'float32', data: input.pixels, dims: [input.units, 3, S, S] } },
        shared: {},
        batch: Math.max(1, Math.floor(ATTENTION_BYTES_PER_RUN / perRun)),
      };
    },
    layout(frames, visual, question) {
      if (visual.units !== frames.length || visual.gridRows * visual.gridCols !== config.tokensPerImage) {
        throw new Error(`idefics3 layout: ${frames.length} frames planned as ${visual.units} units`);
      }
      const video = {
        kind: 'video' as const,
        timestampsS: frames.map((f) => f.timestampS),
        durationS: duration(frames),
      };
      const pieces = idefics3Prompt(video, question, config.tokensPerImage);
      return idefics3Layout(pieces, (text) => tokenizer.encode(text), specialId, config.imageTokenId);
    },
    placeholders() {
      const tokens = [IDEFICS3_TOKENS.image, IDEFICS3_TOKENS.fakeImage, IDEFICS3_TOKENS.globalImage];
      return tokens.flatMap((text) => {
        const id = tokenizer.tokenToId(text);
        return id === undefined ? [] : [{ id, text }];
      });
    },
  };
};

/**
 * The video's duration for the prompt's `[H:MM:SS]` (transformers prints the decoded clip's length): frames at
 * the centres of equal segments, as `--frames N` samples them, span first + last seconds exactly.
 */
function duration(frames: readonly PromptFrame[]): number {
  if (frames.length === 0) return 0;
  return frames[0].timestampS + (frames.at(-1)?.timestampS ?? 0);
}

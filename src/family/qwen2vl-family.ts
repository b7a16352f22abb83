import { qwen2VlPrompt } from '../engine/qwen2vl-prompt.js';
import { ModelError } from '../errors.js';
import type { Qwen2VlConfig } from '../model/qwen2vl-config.js';
import { QWEN2VL_VISION_IO } from '../onnx/qwen2vl-vision.js';
import { processQwen2VlVideo, readQwen2VlProcessorConfig, smartResize } from '../vision/qwen2vl-processor.js';
import type { FamilyFactory } from './model-family.js';

/** Attention scratch one vision-graph run may use: a unit's [heads, P, P] probabilities, a few copies. */
const ATTENTION_BYTES_PER_RUN = 256 * 2 ** 20;

/**
 * Qwen2-VL: frames in pairs make one unit (a temporal slice), its token grid the smart-resized frame in
 * 2×2-merged patches; the chat template's one `<|video_pad|>` expands to every token, numbered with
 * M-RoPE positions (get_rope_index).
 */
export const qwen2VlFamily: FamilyFactory<Qwen2VlConfig> = (config, { dir, tokenizer, chatTemplate }) => {
  const processor = readQwen2VlProcessorConfig(dir, config.vision);
  const factor = processor.patchSize * processor.mergeSize;
  const tokens = {
    visionStartTokenId: config.visionStartTokenId,
    visionEndTokenId: config.visionEndTokenId,
    imageTokenId: config.imageTokenId,
    videoTokenId: config.videoTokenId,
  };
  const plan = (frames: number, size?: { width: number; height: number }) => {
    // Without a size, the largest grid max_pixels allows for a square frame: an upper bound for planning.
    const side = Math.floor(Math.sqrt(processor.maxPixels) / factor) * factor;
    const resized = size
      ? smartResize(size.height, size.width, factor, processor.minPixels, processor.maxPixels)
      : { height: side, width: side };
    return {
      units: Math.ceil(frames / processor.temporalPatchSize),
      gridRows: resized.height / factor,
      gridCols: resized.width / factor,
    };
  };
  return {
    decodeFit: undefined,
    plan,
    async prepare(frames) {
      const input = processQwen2VlVideo(frames, processor);
      const [units, patches] = input.dims;
      const perRun = config.vision.numHeads * patches * patches * 4 * 3;
      return {
        units,
        perUnit: { [QWEN2VL_VISION_IO.pixels]: { type: 'float32', data: input.pixels, dims: [...input.dims] } },
        shared: {
          [QWEN2VL_VISION_IO.patchPositions]: { type: 'int64', data: input.patchPositions, dims: [patches, 2] },
        },
        gridRows: input.tokenGrid.rows,
        gridCols: input.tokenGrid.cols,
        batch: Math.max(1, Math.floor(ATTENTION_BYTES_PER_RUN / perRun)),
      };
    },
    layout(_frames, visual, question) {
      const text = chatTemplate.renderChat(
        [
          {
            role: 'user',
            content: [{ type: 'video' }, { type: 'text', text: question }],
          },
        ],
        { addGenerationPrompt: true },
      );
      const ids = tokenizer.encode(text);
      if (!ids.includes(config.videoTokenId)) {
        throw new ModelError(
          `the chat template wrote no video placeholder (id ${config.videoTokenId}) for a {type: "video"} item`,
          "use the checkpoint's own chat_template.json (Qwen2-VL's prints <|vision_start|><|video_pad|><|vision_end|>)",
        );
      }
      return qwen2VlPrompt(
        ids,
        [{ kind: 'video', units: visual.units, rows: visual.gridRows, cols: visual.gridCols }],
        tokens,
      );
    },
    placeholders() {
      return [config.imageTokenId, config.videoTokenId, config.visionStartTokenId, config.visionEndTokenId].map(
        (id) => ({
          id,
          text: tokenizer.idToToken(id) ?? `token ${id}`,
        }),
      );
    },
  };
};

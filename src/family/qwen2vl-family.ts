import { totalmem } from 'node:os';
import { qwen2VlPrompt } from '../engine/qwen2vl-prompt.js';
import { ModelError, UsageError } from '../errors.js';
import type { Qwen2VlConfig } from '../model/qwen2vl-config.js';
import { QWEN2VL_VISION_IO } from '../onnx/qwen2vl-vision.js';
import { processQwen2VlVideo, readQwen2VlProcessorConfig, smartResize } from '../vision/qwen2vl-processor.js';
import type { FamilyFactory } from './model-family.js';

/** Attention scratch one vision-graph run may use: a unit's [heads, P, P] probabilities, a few copies. */
const ATTENTION_BYTES_PER_RUN = 256 * 2 ** 20;
/**
 * Float32 [heads, P, P] tensors one block's attention may hold at once (scores, scaled, probabilities);
 * ONNX Runtime's peak for a 1080p unit of Qwen2-VL-2B's tower measured 2.2 of them.
 */
const ATTENTION_COPIES = 3;

/** Bytes of float32 attention scratch one unit of `patches` patches needs in the vision graph. */
export function unitAttentionBytes(numHeads: number, patches: number): number {
  return numHeads * patches * patches * 4 * ATTENTION_COPIES;
}

/** The most attention scratch one unit may need: the vision graph holds a unit's attention whole. */
export function maxUnitAttentionBytes(): number {
  return totalmem() / 2;
}

/**
 * Qwen2-VL: a video's frames in pairs make one unit (a temporal slice), its token grid the smart-resized
 * frame in 2×2-merged patches; the chat template's one `<|video_pad|>` expands to every token, numbered
 * with M-RoPE positions (get_rope_index). A single frame is an image: one unit (the frame repeated in
 * time, as the processor does), written as `<|image_pad|>`.
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
    decodeFit: processor.doResize
      ? { factor, minPixels: processor.minPixels, maxPixels: processor.maxPixels }
      : undefined,
    plan,
    async prepare(frames) {
      const input = processQwen2VlVideo(frames, processor);
      const [units, patches] = input.dims;
      const perRun = unitAttentionBytes(config.vision.numHeads, patches);
      if (perRun > maxUnitAttentionBytes()) {
        const { width, height } = input.resized;
        throw new UsageError(
          `a ${width}×${height} frame is ${patches} patches for Qwen2-VL's vision encoder, whose attention would ` +
            `need ${(perRun / 2 ** 30).toFixed(1)} GiB, more than half this machine's memory`,
          `lower max_pixels in ${dir}/preprocessor_config.json (e.g. ${768 * factor ** 2}, ` +
            "qwen-vl-utils' video limit), or give smaller frames",
        );
      }
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
    layout(frames, visual, question) {
      const kind = frames.length === 1 && visual.units === 1 ? 'image' : 'video';
      const text = chatTemplate.renderChat(
        [
          {
            role: 'user',
            content: [
              kind === 'image' ? { type: 'image', index: 1, timestamp: frames[0].timestampS } : { type: 'video' },
              { type: 'text', text: question },
            ],
          },
        ],
        { addGenerationPrompt: true },
      );
      const ids = tokenizer.encode(text);
      const pad = kind === 'image' ? config.imageTokenId : config.videoTokenId;
      if (!ids.includes(pad)) {
        throw new ModelError(
          `the chat template wrote no ${kind} placeholder (id ${pad}) for a {type: "${kind}"} item`,
          "use the checkpoint's own chat_template.json (Qwen2-VL's prints " +
            `<|vision_start|><|${kind}_pad|><|vision_end|>)`,
        );
      }
      return qwen2VlPrompt(ids, [{ kind, units: visual.units, rows: visual.gridRows, cols: visual.gridCols }], tokens);
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

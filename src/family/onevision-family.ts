import { layoutOnevisionPrompt, type OnevisionMedia } from '../engine/onevision-prompt.js';
import type { VisionInput } from '../engine/vision-input.js';
import type { ChatContent } from '../model/chat-template.js';
import type { OnevisionConfig } from '../model/onevision-config.js';
import { ONEVISION_GRAPHS, ONEVISION_IO } from '../onnx/onevision-vision.js';
import {
  processOnevisionImage,
  processOnevisionVideo,
  readOnevisionProcessors,
} from '../vision/onevision-processor.js';
import type { FamilyFactory, VisualPlan } from './model-family.js';

/** Attention scratch one vision-graph run may use: a tile's [heads, P, P] probabilities, a few copies. */
const ATTENTION_BYTES_PER_RUN = 256 * 2 ** 20;

/**
 * LLaVA-OneVision: a video is a unit per frame, its patchGrid² projected rows pooled to pooledGrid² tokens
 * (video-pool.onnx), with one image_newline row after the last frame. A single frame goes the image path
 * (anyres): one unit of two subgrids, the base tile's patchGrid² tokens and the tile grid's tokens
 * (anyres-pack.onnx) with an image_newline after each of its rows. The projector runs inside vision.onnx,
 * so the rows the engine prunes are LLM tokens already (its projector is the identity).
 */
export const onevisionFamily: FamilyFactory<OnevisionConfig> = (config, { dir, tokenizer, chatTemplate }) => {
  const processors = readOnevisionProcessors(dir, config);
  const patches = config.patchGrid ** 2;
  const batch = Math.max(1, Math.floor(ATTENTION_BYTES_PER_RUN / (config.vision.numHeads * patches * patches * 12)));
  const tile = config.vision.imageSize;
  const plan = (frames: number): VisualPlan => ({
    units: frames,
    gridRows: config.pooledGrid,
    gridCols: config.pooledGrid,
  });
  const pixels = (p: { data: Float32Array; dims: readonly number[] }) => ({
    [ONEVISION_IO.pixels]: { type: 'float32' as const, data: p.data, dims: [...p.dims] },
  });
  return {
    // Video frames are resized to the tile size whatever their aspect ratio.
    decodeFit: { height: tile, width: tile },
    plan,
    async prepare(frames): Promise<VisionInput> {
      const video = processOnevisionVideo(frames, processors);
      return {
        ...plan(frames.length),
        perUnit: pixels(video.pixels),
        shared: {},
        batch,
        post: { graph: ONEVISION_GRAPHS.videoPool, inputs: {}, units: frames.length },
      };
    },
    async prepareImage(frame): Promise<VisionInput> {
      const image = processOnevisionImage(frame, processors);
      const { tileGrid, crop, tokenGrid } = image.layout;
      const subgrids = image.units.map(({ rows, cols }) => ({ rows, cols }));
      return {
        units: image.pixels.dims[0],
        perUnit: pixels(image.pixels),
        shared: {},
        gridRows: 1,
        gridCols: subgrids.reduce((a, g) => a + g.rows * g.cols, 0),
        batch,
        post: {
          graph: ONEVISION_GRAPHS.anyresPack,
          inputs: {
            [ONEVISION_IO.tileGrid]: { type: 'int64', data: [...tileGrid], dims: [2] },
            [ONEVISION_IO.crop]: { type: 'int64', data: [...crop], dims: [4] },
            [ONEVISION_IO.tokenGrid]: { type: 'int64', data: [...tokenGrid], dims: [2] },
          },
          units: 1,
        },
        subgrids,
      };
    },
    layout(frames, visual, question) {
      const image = visual.subgrids;
      const media: OnevisionMedia = image
        ? {
            kind: 'image',
            units: image.map((g, i) => ({ ...g, newlineAfterRow: i > 0 })),
          }
        : {
            kind: 'video',
            units: Array.from({ length: visual.units }, () => ({
              rows: visual.gridRows,
              cols: visual.gridCols,
              newlineAfterRow: false,
            })),
          };
      const item: ChatContent = image
        ? { type: 'image', index: 1, timestamp: Math.round((frames[0]?.timestampS ?? 0) * 100) / 100 }
        : { type: 'video' };
      const text = chatTemplate.renderChat([{ role: 'user', content: [item, { type: 'text', text: question }] }], {
        addGenerationPrompt: true,
      });
      const { layout, newlineRows } = layoutOnevisionPrompt(tokenizer.encode(text), [media], config);
      return { ...layout, separatorRows: newlineRows };
    },
    placeholders() {
      return [config.imageTokenId, config.videoTokenId].map((id) => ({
        id,
        text: tokenizer.idToToken(id) ?? `token ${id}`,
      }));
    },
  };
};

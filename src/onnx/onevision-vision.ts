/**
 * LLaVA-OneVision's vision side as four graphs:
 *
 * - `vision`: SigLIP up to the feature layer, then the projector, per tile (image) or frame (video):
 *   projected rows, patch saliency and keys at patch granularity [n, patchGrid², ·].
 * - `video-pool`: each frame's patchGrid² rows resized bilinearly to pooledGrid² (27×27 → 14×14),
 *   as HF's apply_pooling does after the projector: one row per LLM token of the frame.
 * - `anyres-pack`: an image's tiles (the base tile first, then the grid row-major) → the base tile's
 *   rows, then the grid's rows laid out as one picture, unpadded and, past anyres_max_N, resized
 *   bilinearly (HF's pack_image_features): one row per LLM token, `image_newline` rows left out.
 * - `image-newline`: the learnt row that follows each row of an image's grid and ends a video.
 *
 * Both connectors mix projected rows (bilinear interpolation after a non-linear projector), so the
 * projection runs in `vision`, and every row these graphs output is an LLM token already: the engine's
 * projector is the identity for this family, and pruning selects among the rows of video-pool and
 * anyres-pack. Saliency and keys go through the same pooling/packing as the features, so a token's
 * saliency and keys are the interpolation-weighted means of those of the patches it is made from.
 */
import type { OnevisionConfig } from '../model/onevision-config.js';
import { GraphBuilder } from './graph-builder.js';
import { type GraphDtype, WeightLoader, type WeightReader } from './layers.js';
import { onevisionKeys } from './onevision-keys.js';
import { mlpProjector, visionTower } from './vision-tower.js';

export const ONEVISION_GRAPHS = {
  vision: 'vision.onnx',
  videoPool: 'video-pool.onnx',
  anyresPack: 'anyres-pack.onnx',
  imageNewline: 'image-newline.onnx',
} as const;

/** Input and output names of the OneVision vision-side graphs. */
export const ONEVISION_IO = {
  pixels: 'pixel_values',
  /** [units, tokens, textHidden]: projected rows. */
  features: 'features',
  /** The pooling and packing graphs take the vision graph's outputs under these names. */
  patchFeatures: 'patch_features',
  patchSaliency: 'patch_cls_attention',
  patchKeys: 'patch_keys',
  /** [units, tokens]: mean attention received at the feature layer (SigLIP has no CLS). */
  saliency: 'cls_attention',
  /** [units, tokens, visionHidden]: the feature layer's keys. */
  keys: 'keys',
  /** int64 [2]: rows and columns of tiles in an image's grid (the base tile not counted). */
  tileGrid: 'tile_grid',
  /** int64 [4]: top, left, bottom, right (exclusive) of the unpadded region, in patches of the whole grid. */
  crop: 'crop',
  /** int64 [2]: rows and columns of the grid's tokens after the anyres_max resize (the crop's size if none). */
  tokenGrid: 'token_grid',
  /** [textHidden]: the image_newline row. */
  newline: 'newline',
} as const;

/** The vision-side graphs of a llava_onevision checkpoint, as [file, build] pairs for convert. */
export function buildOnevisionGraphs(
  cfg: OnevisionConfig,
  reader: WeightReader,
  dtype: GraphDtype,
): [string, () => GraphBuilder][] {
  return [
    [ONEVISION_GRAPHS.vision, () => buildOnevisionVision(cfg, reader, dtype)],
    [ONEVISION_GRAPHS.videoPool, () => buildVideoPool(cfg)],
    [ONEVISION_GRAPHS.anyresPack, () => buildAnyresPack(cfg)],
    [ONEVISION_GRAPHS.imageNewline, () => buildImageNewline(cfg, reader, dtype)],
  ];
}

/** Tiles or frames [n, 3, S, S] → projected rows, saliency and keys per patch. */
export function buildOnevisionVision(cfg: OnevisionConfig, reader: WeightReader, dtype: GraphDtype): GraphBuilder {
  const g = new GraphBuilder('onevision_vision');
  const w = new WeightLoader(g, reader, dtype);
  const keys = onevisionKeys(reader);
  const v = cfg.vision;
  const patches = cfg.patchGrid ** 2;
  const pixels = g.input(ONEVISION_IO.pixels, 'float32', ['images', v.numChannels, v.imageSize, v.imageSize]);
  const tower = visionTower(w, v, pixels, keys.vision);
  const projected = mlpProjector(w, tower.hidden, keys.projector, cfg.projector);
  g.output(projected, ONEVISION_IO.features, 'float32', ['images', patches, cfg.text.hiddenSize]);
  g.output(tower.saliency, ONEVISION_IO.saliency, 'float32', ['images', patches]);
  g.output(tower.keys, ONEVISION_IO.keys, 'float32', ['images', patches, v.hiddenSize]);
  return g;
}

interface RowInputs {
  /** [n, tokens, textHidden + visionHidden + 1]: features, keys and saliency side by side. */
  rows: string;
  width: number;
}

/** Declares the three per-token inputs and joins them along the channels, so one resize moves them all. */
function rowInputs(g: GraphBuilder, cfg: OnevisionConfig, units: string): RowInputs {
  const dt = cfg.text.hiddenSize;
  const dv = cfg.vision.hiddenSize;
  const patches = cfg.patchGrid ** 2;
  const features = g.input(ONEVISION_IO.patchFeatures, 'float32', [units, patches, dt]);
  const saliency = g.input(ONEVISION_IO.patchSaliency, 'float32', [units, patches]);
  const keys = g.input(ONEVISION_IO.patchKeys, 'float32', [units, patches, dv]);
  const rows = g.op('Concat', [features, keys, g.op('Unsqueeze', [saliency, g.int64([-1])])], { axis: -1 });
  return { rows, width: dt + dv + 1 };
}

/** Splits joined rows [n, tokens, width] back into the three outputs. */
function rowOutputs(
  g: GraphBuilder,
  cfg: OnevisionConfig,
  rows: string,
  units: string | number,
  tokens: string | number,
) {
  const dt = cfg.text.hiddenSize;
  const dv = cfg.vision.hiddenSize;
  const part = (from: number, to: number) => g.op('Slice', [rows, g.int64([from]), g.int64([to]), g.int64([-1])]);
  g.output(part(0, dt), ONEVISION_IO.features, 'float32', [units, tokens, dt]);
  g.output(g.op('Squeeze', [part(dt + dv, dt + dv + 1), g.int64([-1])]), ONEVISION_IO.saliency, 'float32', [
    units,
    tokens,
  ]);
  g.output(part(dt, dt + dv), ONEVISION_IO.keys, 'float32', [units, tokens, dv]);
}

/**
 * Bilinear resize of [n, channels, h, w] to `sizes` (an int64 [4] value): ONNX Resize, linear,
 * half_pixel, no antialias, which is torch.nn.functional.interpolate(mode='bilinear',
 * align_corners=False) — source coordinates clamped at the edges in both.
 */
function bilinear(g: GraphBuilder, x: string, sizes: string): string {
  return g.op('Resize', [x, '', '', sizes], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' });
}

/** Per frame: the patchGrid × patchGrid rows resized to pooledGrid × pooledGrid. */
export function buildVideoPool(cfg: OnevisionConfig): GraphBuilder {
  const g = new GraphBuilder('onevision_video_pool');
  const { rows, width } = rowInputs(g, cfg, 'frames');
  const n = cfg.patchGrid;
  const p = cfg.pooledGrid;
  const planes = g.op('Transpose', [g.op('Reshape', [rows, g.int64([0, n, n, width])])], { perm: [0, 3, 1, 2] });
  const lead = g.op('Slice', [g.op('Shape', [planes]), g.int64([0]), g.int64([2])]);
  const pooled = bilinear(g, planes, g.op('Concat', [lead, g.int64([p, p])], { axis: 0 }));
  const tokens = g.op('Reshape', [g.op('Transpose', [pooled], { perm: [0, 2, 3, 1] }), g.int64([0, p * p, width])]);
  rowOutputs(g, cfg, tokens, 'frames', p * p);
  return g;
}

/**
 * One image's tiles → its LLM tokens: the base tile's patchGrid² rows, then the grid's rows after
 * unpadding and the anyres_max resize, row-major. The geometry comes from the processor.
 */
export function buildAnyresPack(cfg: OnevisionConfig): GraphBuilder {
  const g = new GraphBuilder('onevision_anyres_pack');
  const { rows, width } = rowInputs(g, cfg, 'tiles');
  const tileGrid = g.input(ONEVISION_IO.tileGrid, 'int64', [2]);
  const crop = g.input(ONEVISION_IO.crop, 'int64', [4]);
  const tokenGrid = g.input(ONEVISION_IO.tokenGrid, 'int64', [2]);
  const n = cfg.patchGrid;
  const end = Number.MAX_SAFE_INTEGER;

  const base = g.op('Slice', [rows, g.int64([0]), g.int64([1]), g.int64([0])]);
  const tiles = g.op('Slice', [rows, g.int64([1]), g.int64([end]), g.int64([0])]);
  // [tileRows, tileCols, n, n, C] → [C, tileRows, n, tileCols, n] → one [1, C, tileRows·n, tileCols·n] picture.
  const grid5 = g.op('Reshape', [tiles, g.op('Concat', [tileGrid, g.int64([n, n, width])], { axis: 0 })]);
  const picture = g.op('Reshape', [
    g.op('Transpose', [grid5], { perm: [4, 0, 2, 1, 3] }),
    g.op('Concat', [g.int64([1, width]), g.op('Mul', [tileGrid, g.int64([n])])], { axis: 0 }),
  ]);
  const slice = (from: number, to: number) => g.op('Slice', [crop, g.int64([from]), g.int64([to])]);
  const unpadded = g.op('Slice', [picture, slice(0, 2), slice(2, 4), g.int64([2, 3])]);
  const resized = bilinear(g, unpadded, g.op('Concat', [g.int64([1, width]), tokenGrid], { axis: 0 }));
  const gridRows = g.op('Reshape', [g.op('Transpose', [resized], { perm: [0, 2, 3, 1] }), g.int64([1, -1, width])]);
  rowOutputs(g, cfg, g.op('Concat', [base, gridRows], { axis: 1 }), 1, 'tokens');
  return g;
}

/** The `image_newline` row [textHidden]; the graph has no inputs. */
export function buildImageNewline(cfg: OnevisionConfig, reader: WeightReader, dtype: GraphDtype): GraphBuilder {
  const g = new GraphBuilder('onevision_image_newline');
  const w = new WeightLoader(g, reader, dtype);
  g.output(w.tensor(onevisionKeys(reader).imageNewline), ONEVISION_IO.newline, 'float32', [cfg.text.hiddenSize]);
  return g;
}

/**
 * LLaVA-OneVision's image and video processors (transformers' LlavaOnevisionImageProcessor and
 * LlavaOnevisionVideoProcessor, 4.46), and the token geometry LlavaOnevisionModel.pack_image_features
 * gives an image: one anyres image per call.
 *
 * Image: select_best_resolution over image_grid_pinpoints; the image resized keeping its aspect ratio
 * (the fitted side exact, the other side rounded up) and padded with black to that resolution, centred;
 * cut into size×size tiles row-major; the whole image resized to size×size in front (the base tile).
 * Video: every frame resized to size×size. Resizes are PIL's (src/vision/preprocess.ts), then rescale
 * and normalise, as the llava processor.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError, UsageError } from '../errors.js';
import type { Frame, RgbImage } from '../media/frame.js';
import { JsonFields, readJsonObject } from '../model/json-file.js';
import { type OnevisionConfig, type Resolution, readPinpoints } from '../model/onevision-config.js';
import type { ProcessorConfig, Resample } from '../model/processor-config.js';
import { type PixelBatch, preprocess } from './preprocess.js';

/** A visual unit's grid of LLM tokens; an image's tile grid has an image_newline after each row. */
export interface VisualUnit {
  rows: number;
  cols: number;
  newlineAfterRow: boolean;
}

export interface OnevisionProcessors {
  /** Resize of the base tile and of video frames to size×size, rescale, normalise. */
  image: ProcessorConfig;
  video: ProcessorConfig;
  /** Tile side in pixels (the tower's image size). */
  tileSize: number;
  /** Patches per tile side. */
  patchGrid: number;
  pooledGrid: number;
  pinpoints: Resolution[];
  maxAnyresTiles: number;
}

/** Where an image's grid tokens come from, in the numbers the anyres-pack graph takes. */
export interface AnyresLayout {
  /** [height, width] of the original image. */
  imageSize: Resolution;
  /** The tiling resolution select_best_resolution picked, [height, width]. */
  bestResolution: Resolution;
  /** Tiles in the grid, [rows, cols] (the base tile not counted). */
  tileGrid: [number, number];
  /** The unpadded region, in patches of the whole grid: top, left, bottom, right (exclusive). */
  crop: [number, number, number, number];
  /** The grid's tokens after the anyres_max resize, [rows, cols] (the crop's size when not resized). */
  tokenGrid: [number, number];
}

export interface OnevisionImage {
  /** [1 + tiles, 3, size, size]: the base tile, then the grid's tiles row-major. */
  pixels: PixelBatch;
  layout: AnyresLayout;
  /** The base tile's patchGrid × patchGrid tokens, then the grid's tokens with a newline after each row. */
  units: [VisualUnit, VisualUnit];
}

export interface OnevisionVideo {
  /** [frames, 3, size, size]. */
  pixels: PixelBatch;
  /** One pooledGrid × pooledGrid unit per frame (the video's single image_newline is the prompt's). */
  units: VisualUnit[];
}

const RESAMPLE: Resample[] = ['nearest', 'lanczos', 'bilinear', 'bicubic', 'box', 'hamming'];
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/**
 * Reads preprocessor_config.json (the image processor) and video_preprocessor_config.json (transformers
 * ≥ 4.52; older checkpoints keep the video settings in preprocessor_config.json). Without the files,
 * LlavaOnevisionImageProcessor's defaults apply (bicubic, OpenAI CLIP mean and std).
 */
export function readOnevisionProcessors(dir: string, cfg: OnevisionConfig): OnevisionProcessors {
  const imageFile = join(dir, 'preprocessor_config.json');
  const image = fields(imageFile);
  const videoFile = join(dir, 'video_preprocessor_config.json');
  const video = existsSync(videoFile) ? fields(videoFile) : image;
  const tile = cfg.vision.imageSize;
  const pinpoints = readPinpoints(image, 'image_grid_pinpoints', tile) ?? cfg.imageGridPinpoints;
  if (JSON.stringify(pinpoints) !== JSON.stringify(cfg.imageGridPinpoints)) {
    throw new ModelError(
      `${imageFile}: image_grid_pinpoints differ from config.json's, so the model would misread the tiles`,
      'the preprocessor config does not belong to this checkpoint: download it again',
    );
  }
  return {
    image: pixelSettings(image, tile),
    video: pixelSettings(video, tile),
    tileSize: tile,
    patchGrid: cfg.patchGrid,
    pooledGrid: cfg.pooledGrid,
    pinpoints,
    maxAnyresTiles: cfg.maxAnyresTiles,
  };
}

function fields(file: string): JsonFields {
  return new JsonFields(file, existsSync(file) ? readJsonObject(file, '') : {});
}

function pixelSettings(f: JsonFields, tile: number): ProcessorConfig {
  // Frames and the base tile are always resized to size×size (do_resize aside): the tower takes nothing else.
  const size = f.has('size') ? f.sub('size') : null;
  const height = !size ? tile : size.has('shortest_edge') ? size.int('shortest_edge') : size.int('height');
  const width = !size ? tile : size.has('shortest_edge') ? height : size.int('width');
  if (height !== tile || width !== tile) {
    throw new ModelError(
      `${f.file}: size is ${width}×${height} but the vision tower takes ${tile}×${tile} tiles ` +
        '(config.json vision_config.image_size)',
      'the preprocessor config does not belong to this checkpoint: download it again',
    );
  }
  const code = f.int('resample', 3, 0);
  const resample = RESAMPLE[code];
  if (!resample) f.fail('resample', `must be a PIL resample code 0..5, got ${code}`);
  const config: ProcessorConfig = {
    doResize: true,
    size: { height: tile, width: tile },
    resample,
    doCenterCrop: false,
    cropSize: { height: tile, width: tile },
    doRescale: f.bool('do_rescale', true),
    rescaleFactor: f.positive('rescale_factor', 1 / 255),
    doNormalize: f.bool('do_normalize', true),
    imageMean: f.numberTriple('image_mean', CLIP_MEAN),
    imageStd: f.numberTriple('image_std', CLIP_STD),
  };
  if (config.imageStd.some((v) => v <= 0)) f.fail('image_std', 'must be positive');
  return config;
}

/** transformers' select_best_resolution: the most image pixels kept, then the least padding. */
export function selectBestResolution(height: number, width: number, pinpoints: readonly Resolution[]): Resolution {
  let best: Resolution = pinpoints[0];
  let maxEffective = 0;
  let minWasted = Number.POSITIVE_INFINITY;
  for (const [h, w] of pinpoints) {
    const scale = Math.min(w / width, h / height);
    const effective = Math.min(Math.trunc(width * scale) * Math.trunc(height * scale), width * height);
    const wasted = h * w - effective;
    if (effective > maxEffective || (effective === maxEffective && wasted < minWasted)) {
      maxEffective = effective;
      minWasted = wasted;
      best = [h, w];
    }
  }
  return best;
}

/** Python's float floor division a // b, for a, b > 0 (it can differ from Math.floor(a / b) by one). */
function floorDiv(a: number, b: number): number {
  const mod = a % b;
  const div = (a - mod) / b;
  const floor = Math.floor(div);
  return div - floor > 0.5 ? floor + 1 : floor;
}

/**
 * The geometry of an image's grid tokens, as LlavaOnevisionModel.pack_image_features computes it (and
 * the processor's token count): the tile grid's patches as one picture, unpadded to the image's aspect
 * ratio (whole rows or columns cut equally at both sides), then, when it holds more than
 * maxAnyresTiles tiles' worth of patches by a ratio r > 1.1, resized to ⌊rows / r⌋ × ⌊cols / r⌋.
 */
export function anyresLayout(height: number, width: number, p: OnevisionProcessors): AnyresLayout {
  const bestResolution = selectBestResolution(height, width, p.pinpoints);
  const tileGrid: [number, number] = [bestResolution[0] / p.tileSize, bestResolution[1] / p.tileSize];
  const n = p.patchGrid;
  const gridH = tileGrid[0] * n;
  const gridW = tileGrid[1] * n;
  let crop: AnyresLayout['crop'] = [0, 0, gridH, gridW];
  if (width / height > gridW / gridH) {
    const pad = Math.floor((gridH - Math.trunc(height * (gridW / width))) / 2);
    crop = [pad, 0, gridH - pad, gridW];
  } else {
    const pad = Math.floor((gridW - Math.trunc(width * (gridH / height))) / 2);
    crop = [0, pad, gridH, gridW - pad];
  }
  const rows = crop[2] - crop[0];
  const cols = crop[3] - crop[1];
  const ratio = Math.sqrt((rows * cols) / (p.maxAnyresTiles * n * n));
  const tokenGrid: [number, number] = ratio > 1.1 ? [floorDiv(rows, ratio), floorDiv(cols, ratio)] : [rows, cols];
  return { imageSize: [height, width], bestResolution, tileGrid, crop, tokenGrid };
}

/** One image → the base tile and the grid's tiles, with the geometry of its tokens. */
export function processOnevisionImage(image: RgbImage, p: OnevisionProcessors): OnevisionImage {
  const layout = anyresLayout(image.height, image.width, p);
  const [bh, bw] = layout.bestResolution;
  const s = p.tileSize;
  // get_patch_output_size: the side that limits the scale is filled, the other rounded up.
  const scaleW = bw / image.width;
  const scaleH = bh / image.height;
  const fitted =
    scaleW < scaleH
      ? { width: bw, height: Math.min(Math.ceil(image.height * scaleW), bh) }
      : { width: Math.min(Math.ceil(image.width * scaleH), bw), height: bh };
  const frame = asFrame(image);
  const resized = preprocess(frame, { ...p.image, size: fitted });
  // Black padding goes in before rescale and normalise: its value is what a black pixel becomes.
  const black = preprocess(asFrame({ width: 1, height: 1, rgb: new Uint8Array(3) }), { ...p.image, doResize: false });
  const top = Math.floor((bh - fitted.height) / 2);
  const left = Math.floor((bw - fitted.width) / 2);

  const [tileRows, tileCols] = layout.tileGrid;
  const plane = s * s;
  const data = new Float32Array((1 + tileRows * tileCols) * 3 * plane);
  data.set(preprocess(frame, p.image), 0);
  for (let tr = 0; tr < tileRows; tr++) {
    for (let tc = 0; tc < tileCols; tc++) {
      const base = (1 + tr * tileCols + tc) * 3 * plane;
      for (let c = 0; c < 3; c++) {
        const src = c * fitted.width * fitted.height;
        for (let y = 0; y < s; y++) {
          const sy = tr * s + y - top;
          const row = base + c * plane + y * s;
          for (let x = 0; x < s; x++) {
            const sx = tc * s + x - left;
            const inside = sy >= 0 && sy < fitted.height && sx >= 0 && sx < fitted.width;
            data[row + x] = inside ? resized[src + sy * fitted.width + sx] : black[c];
          }
        }
      }
    }
  }
  return {
    pixels: { data, dims: [1 + tileRows * tileCols, 3, s, s] },
    layout,
    units: [
      { rows: p.patchGrid, cols: p.patchGrid, newlineAfterRow: false },
      { rows: layout.tokenGrid[0], cols: layout.tokenGrid[1], newlineAfterRow: true },
    ],
  };
}

/** Video frames → [frames, 3, size, size], each frame resized to size×size whatever its aspect ratio. */
export function processOnevisionVideo(frames: readonly RgbImage[], p: OnevisionProcessors): OnevisionVideo {
  if (frames.length === 0) throw new UsageError('no frames to preprocess');
  const s = p.tileSize;
  const per = 3 * s * s;
  const data = new Float32Array(frames.length * per);
  for (const [i, f] of frames.entries()) data.set(preprocess(asFrame(f), p.video), i * per);
  return {
    pixels: { data, dims: [frames.length, 3, s, s] },
    units: frames.map(() => ({ rows: p.pooledGrid, cols: p.pooledGrid, newlineAfterRow: false })),
  };
}

function asFrame(image: RgbImage): Frame {
  return { index: 0, timestampS: 0, width: image.width, height: image.height, rgb: image.rgb };
}

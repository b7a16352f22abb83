/**
 * Frames to Qwen2-VL vision inputs as transformers' Qwen2VLImageProcessor computes them: smart_resize to a
 * multiple of patch·merge within [min_pixels, max_pixels] (Pillow bicubic, as src/vision/preprocess.ts
 * ports it), rescale, normalise, frames in pairs (an image, or a video's odd last frame, repeated in
 * time), then patch flattening.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError, UsageError } from '../errors.js';
import type { RgbImage } from '../media/frame.js';
import { JsonFields, readJsonObject } from '../model/json-file.js';
import type { ProcessorConfig, Resample } from '../model/processor-config.js';
import type { Qwen2VlVisionConfig } from '../model/qwen2vl-config.js';
import { preprocess } from './preprocess.js';

export interface Qwen2VlProcessorConfig {
  doResize: boolean;
  resample: Resample;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  minPixels: number;
  maxPixels: number;
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
}

/** What the vision graph takes for one image or one video, and the LLM-token grid each unit gives. */
export interface Qwen2VlVisionInput {
  /** [units, patchesPerUnit, C·T·P·P]: HF's pixel_values (or pixel_values_videos) with the units split. */
  pixels: Float32Array;
  dims: [number, number, number];
  /** [patchesPerUnit, 2]: each row's (patch row, patch col), the same for every unit. */
  patchPositions: number[];
  /** HF's image_grid_thw / video_grid_thw: temporal slices and patches per side. */
  grid: { t: number; h: number; w: number };
  /** LLM tokens per unit: (h / merge) × (w / merge). */
  tokenGrid: { rows: number; cols: number };
  /** Size the frames were resized to. */
  resized: { height: number; width: number };
}

// transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD, Qwen2VLImageProcessor's defaults.
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;
const RESAMPLE: Resample[] = ['nearest', 'lanczos', 'bilinear', 'bicubic', 'box', 'hamming'];

/**
 * Reads preprocessor_config.json (defaults: Qwen2VLImageProcessor's). min/max pixels come from
 * `min_pixels`/`max_pixels`, or from `size.shortest_edge`/`size.longest_edge` as newer transformers write them.
 */
export function readQwen2VlProcessorConfig(dir: string, vision: Qwen2VlVisionConfig): Qwen2VlProcessorConfig {
  const file = join(dir, 'preprocessor_config.json');
  const f = new JsonFields(file, existsSync(file) ? readJsonObject(file, '') : {});
  const size = f.has('size') ? f.sub('size') : null;
  const code = f.int('resample', 3, 0);
  const resample = RESAMPLE[code];
  if (!resample) f.fail('resample', `must be a PIL resample code 0..5, got ${code}`);
  const config: Qwen2VlProcessorConfig = {
    doResize: f.bool('do_resize', true),
    resample,
    doRescale: f.bool('do_rescale', true),
    rescaleFactor: f.positive('rescale_factor', 1 / 255),
    doNormalize: f.bool('do_normalize', true),
    imageMean: f.numberTriple('image_mean', CLIP_MEAN),
    imageStd: f.numberTriple('image_std', CLIP_STD),
    minPixels: f.int('min_pixels', size?.has('shortest_edge') ? size.int('shortest_edge') : 56 * 56),
    maxPixels: f.int('max_pixels', size?.has('longest_edge') ? size.int('longest_edge') : 28 * 28 * 1280),
    patchSize: f.int('patch_size', vision.patchSize),
    temporalPatchSize: f.int('temporal_patch_size', vision.temporalPatchSize),
    mergeSize: f.int('merge_size', vision.spatialMergeSize),
  };
  if (config.imageStd.some((v) => v <= 0)) f.fail('image_std', 'must be positive');
  const mismatch =
    config.patchSize !== vision.patchSize ||
    config.temporalPatchSize !== vision.temporalPatchSize ||
    config.mergeSize !== vision.spatialMergeSize;
  if (mismatch) {
    throw new ModelError(
      `${file}: patch_size ${config.patchSize}, temporal_patch_size ${config.temporalPatchSize}, merge_size ` +
        `${config.mergeSize} differ from config.json's vision_config`,
      'the preprocessor config does not belong to this checkpoint: download it again',
    );
  }
  return config;
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * transformers' smart_resize: both sides a multiple of `factor`, the area within [minPixels, maxPixels],
 * the aspect ratio kept as closely as that allows.
 */
export function smartResize(
  height: number,
  width: number,
  factor: number,
  minPixels: number,
  maxPixels: number,
): { height: number; width: number } {
  if (height < factor || width < factor) {
    throw new UsageError(
      `a ${width}×${height} picture is too small for Qwen2-VL: both sides must be at least ${factor} pixels`,
      'give a larger image or video',
    );
  }
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new UsageError(
      `a ${width}×${height} picture has an aspect ratio above 200, which Qwen2-VL's processor refuses`,
      'crop the picture to a less extreme shape',
    );
  }
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.floor(height / beta / factor) * factor;
    w = Math.floor(width / beta / factor) * factor;
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return { height: h, width: w };
}

/** One image: a single unit, the frame repeated `temporal_patch_size` times. */
export function processQwen2VlImage(image: RgbImage, config: Qwen2VlProcessorConfig): Qwen2VlVisionInput {
  return processQwen2VlVideo([image], config);
}

/**
 * Frames of one video (all one size): `temporal_patch_size` consecutive frames make one unit; an
 * incomplete last unit repeats the last frame, as transformers does.
 */
export function processQwen2VlVideo(frames: readonly RgbImage[], config: Qwen2VlProcessorConfig): Qwen2VlVisionInput {
  if (frames.length === 0) throw new UsageError('no frames to preprocess');
  const { width, height } = frames[0];
  const odd = frames.findIndex((f) => f.width !== width || f.height !== height);
  if (odd >= 0) {
    throw new UsageError(
      `frame ${odd} is ${frames[odd].width}×${frames[odd].height}, frame 0 ${width}×${height}: ` +
        'the frames of one video must have one size',
      'give frames of one size',
    );
  }
  const factor = config.patchSize * config.mergeSize;
  const resized = config.doResize
    ? smartResize(height, width, factor, config.minPixels, config.maxPixels)
    : { height, width };
  if (resized.height % factor !== 0 || resized.width % factor !== 0) {
    throw new UsageError(
      `${resized.width}×${resized.height} frames cannot be cut into ${factor}-pixel merged patches`,
      'enable do_resize in preprocessor_config.json, or give frames whose sides are multiples of it',
    );
  }
  const steps: ProcessorConfig = {
    doResize: true,
    size: resized,
    resample: config.resample,
    doCenterCrop: false,
    cropSize: resized,
    doRescale: config.doRescale,
    rescaleFactor: config.rescaleFactor,
    doNormalize: config.doNormalize,
    imageMean: config.imageMean,
    imageStd: config.imageStd,
  };
  const planes = frames.map((f) => preprocess({ ...f, index: 0, timestampS: 0 }, steps));
  return flattenPatches(planes, resized.height, resized.width, config);
}

/**
 * Qwen2VLImageProcessor's patch flattening of CHW frames (3 channels): rows in (t, h/m, w/m, m, m)
 * order, so each merge group's m² patches are consecutive, and columns in (channel, temporal, P, P)
 * order, the Conv3d kernel's.
 */
export function flattenPatches(
  frames: readonly Float32Array[],
  height: number,
  width: number,
  config: Pick<Qwen2VlProcessorConfig, 'patchSize' | 'temporalPatchSize' | 'mergeSize'>,
): Qwen2VlVisionInput {
  const { patchSize: P, temporalPatchSize: T, mergeSize: m } = config;
  const channels = 3;
  const units = Math.ceil(frames.length / T);
  const gh = height / P;
  const gw = width / P;
  const patchesPerUnit = gh * gw;
  const patchDim = channels * T * P * P;
  const pixels = new Float32Array(units * patchesPerUnit * patchDim);
  const patchPositions = mergeOrderPositions(gh, gw, m);

  const plane = height * width;
  let o = 0;
  for (let u = 0; u < units; u++) {
    const slice = Array.from({ length: T }, (_, tp) => frames[Math.min(u * T + tp, frames.length - 1)]);
    for (let r = 0; r < patchesPerUnit; r++) {
      const y0 = patchPositions[2 * r] * P;
      const x0 = patchPositions[2 * r + 1] * P;
      for (let c = 0; c < channels; c++)
        for (const frame of slice)
          for (let py = 0; py < P; py++) {
            const row = c * plane + (y0 + py) * width + x0;
            for (let px = 0; px < P; px++) pixels[o++] = frame[row + px];
          }
    }
  }
  return {
    pixels,
    dims: [units, patchesPerUnit, patchDim],
    patchPositions,
    grid: { t: units, h: gh, w: gw },
    tokenGrid: { rows: gh / m, cols: gw / m },
    resized: { height, width },
  };
}

/** (row, col) of each patch of a gridH × gridW unit in flattening order: merge groups row-major, then within. */
export function mergeOrderPositions(gridH: number, gridW: number, merge: number): number[] {
  const positions: number[] = [];
  for (let bh = 0; bh < gridH / merge; bh++)
    for (let bw = 0; bw < gridW / merge; bw++)
      for (let mh = 0; mh < merge; mh++)
        for (let mw = 0; mw < merge; mw++) positions.push(bh * merge + mh, bw * merge + mw);
  return positions;
}

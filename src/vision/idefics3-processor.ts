/**
 * Frames to pixel values as transformers' Idefics3ImageProcessor / SmolVLMImageProcessor and SmolVLM2's
 * video processor compute them. Every unit the vision graph sees is a maxImageSize square, so HF's
 * padding is a no-op and its pixel_attention_mask is all ones.
 *
 * Resizing is src/vision/pil-resize.ts, a port of Pillow's: exact for the image path (PIL resizes there).
 * The video path runs torchvision's antialiased uint8 resize in HF, which ports Pillow-SIMD's kernels
 * (with BICUBIC for LANCZOS); its fixed-point rounding is not verified here and may differ by a level.
 */
import { ModelError } from '../errors.js';
import type { RgbImage } from '../media/frame.js';
import type { Idefics3ProcessorConfig, Idefics3ResizeTarget } from '../model/idefics3-processor-config.js';
import { resizeRgb } from './pil-resize.js';
import { valueTables } from './preprocess.js';

/** transformers' MAX_IMAGE_SIZE: no side is resized beyond 4096 px. */
const MAX_SIDE = 4096;

/** LLM-level tokens of one unit, rows × cols. */
export interface TokenGrid {
  rows: number;
  cols: number;
}

export interface Idefics3Units {
  /** [units, 3, S, S] pixel values (S = maxImageSize), the vision graph's input. */
  pixels: Float32Array;
  units: number;
  /** Per unit, its LLM token grid (tokensPerSide × tokensPerSide for every unit). */
  tokenGrids: TokenGrid[];
}

export interface Idefics3ImageUnits extends Idefics3Units {
  /**
   * Per image, its split: rows × cols tiles (row-major) followed by the global image, or 0 × 0 when the image
   * was not split and is one unit. The prompt string depends on it.
   */
  splits: TokenGrid[];
}

interface Size {
  width: number;
  height: number;
}

/** Images (each split into tiles plus the global image, or squared) → the units of every image in order. */
export function processIdefics3Images(
  images: readonly RgbImage[],
  cfg: Idefics3ProcessorConfig,
  tokensPerSide: number,
): Idefics3ImageUnits {
  const side = cfg.maxImageSize;
  const units: { image: RgbImage; left: number; top: number }[] = [];
  const splits: TokenGrid[] = [];
  for (const original of images) {
    let image = cfg.doResize ? resize(original, firstResize(original, cfg.size), cfg) : original;
    if (!cfg.doImageSplitting) {
      units.push({ image: resize(image, { width: side, height: side }, cfg), left: 0, top: 0 });
      splits.push({ rows: 0, cols: 0 });
      continue;
    }
    image = resize(image, multiplesOf(image, side), cfg);
    if (image.width <= side && image.height <= side) {
      units.push({ image, left: 0, top: 0 });
      splits.push({ rows: 0, cols: 0 });
      continue;
    }
    // Sides are multiples of `side` here, so split_image's ceil-sized crops are exactly side × side.
    const rows = image.height / side;
    const cols = image.width / side;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) units.push({ image, left: c * side, top: r * side });
    units.push({ image: resize(image, { width: side, height: side }, cfg), left: 0, top: 0 });
    splits.push({ rows, cols });
  }
  return { ...toPixels(units, cfg, tokensPerSide), splits };
}

/** Video frames, each resized (never split) to one maxImageSize square: one unit per frame. */
export function processIdefics3Video(
  frames: readonly RgbImage[],
  cfg: Idefics3ProcessorConfig,
  tokensPerSide: number,
): Idefics3Units {
  if (!cfg.doResize) {
    throw new ModelError(
      'preprocessor_config.json sets do_resize false: SmolVLM video frames would not come out as the ' +
        `${cfg.maxImageSize}×${cfg.maxImageSize} squares the vision tower takes`,
      'remove do_resize from preprocessor_config.json or set it to true',
    );
  }
  const side = cfg.maxImageSize;
  const resample = cfg.video.resample;
  // The video processor caps the longest edge at 4096 before resizing, the image processor after.
  const target = cfg.video.size;
  const size = 'longestEdge' in target ? { longestEdge: Math.min(target.longestEdge, MAX_SIDE) } : target;
  const units = frames.map((frame) => {
    const first = resizeTo(frame, firstResize(frame, size), resample);
    return { image: resizeTo(first, { width: side, height: side }, resample), left: 0, top: 0 };
  });
  return toPixels(units, cfg, tokensPerSide);
}

/**
 * transformers' get_resize_output_image_size for `longest_edge`: the longest side becomes that size (up or
 * down), the other keeps the aspect ratio, truncated and rounded up to even; then both are capped at 4096.
 */
export function longestEdgeSize(width: number, height: number, longestEdge: number): Size {
  let w = width;
  let h = height;
  const aspect = w / h;
  if (w >= h) {
    w = longestEdge;
    h = Math.trunc(w / aspect);
    if (h % 2 !== 0) h += 1;
  } else {
    h = longestEdge;
    w = Math.trunc(h * aspect);
    if (w % 2 !== 0) w += 1;
  }
  h = Math.max(h, 1);
  w = Math.max(w, 1);
  const capped = w / h;
  if (w >= h && w > MAX_SIDE) {
    w = MAX_SIDE;
    h = Math.trunc(w / capped);
  } else if (h > w && h > MAX_SIDE) {
    h = MAX_SIDE;
    w = Math.trunc(h * capped);
  }
  return { width: Math.max(w, 1), height: Math.max(h, 1) };
}

/** resize_for_vision_encoder: the longest side up to a multiple of `side`, the other from the aspect ratio, then up too. */
export function multiplesOf(image: Size, side: number): Size {
  const aspect = image.width / image.height;
  if (image.width >= image.height) {
    const width = Math.ceil(image.width / side) * side;
    return { width, height: Math.ceil(Math.trunc(width / aspect) / side) * side };
  }
  const height = Math.ceil(image.height / side) * side;
  return { width: Math.ceil(Math.trunc(height * aspect) / side) * side, height };
}

function firstResize(image: Size, target: Idefics3ResizeTarget): Size {
  return 'longestEdge' in target ? longestEdgeSize(image.width, image.height, target.longestEdge) : target;
}

function resize(image: RgbImage, size: Size, cfg: Idefics3ProcessorConfig): RgbImage {
  return resizeTo(image, size, cfg.resample);
}

function resizeTo(image: RgbImage, size: Size, resample: Idefics3ProcessorConfig['resample']): RgbImage {
  return { ...size, rgb: resizeRgb(image, size.width, size.height, resample) };
}

/** Rescales and normalises each unit's side × side window (at left, top) into CHW float32. */
function toPixels(
  units: readonly { image: RgbImage; left: number; top: number }[],
  cfg: Idefics3ProcessorConfig,
  tokensPerSide: number,
): Idefics3Units {
  const side = cfg.maxImageSize;
  const plane = side * side;
  const pixels = new Float32Array(units.length * 3 * plane);
  const luts = valueTables(cfg);
  units.forEach(({ image, left, top }, u) => {
    for (let c = 0; c < 3; c++) {
      const lut = luts[c];
      const base = (u * 3 + c) * plane;
      for (let y = 0; y < side; y++) {
        const src = ((top + y) * image.width + left) * 3 + c;
        for (let x = 0; x < side; x++) pixels[base + y * side + x] = lut[image.rgb[src + x * 3]];
      }
    }
  });
  const grid = { rows: tokensPerSide, cols: tokensPerSide };
  return { pixels, units: units.length, tokenGrids: units.map(() => ({ ...grid })) };
}

/**
 * Frames to pixel values exactly as HF's CLIPImageProcessor / SiglipImageProcessor compute them:
 * resize (shortest edge, or exact size) with PIL's resampling (src/vision/pil-resize.ts), centre crop,
 * rescale, normalise; CHW float32.
 */
import { UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';
import type { ProcessorConfig, ResizeTarget } from '../model/processor-config.js';
import { resizeRgb } from './pil-resize.js';

export interface PixelBatch {
  /** [frames, 3, height, width], row-major. */
  data: Float32Array;
  dims: [number, number, number, number];
}

/** Size after the resize step: transformers' get_resize_output_image_size (the long side truncated). */
export function resizedSize(target: ResizeTarget, width: number, height: number): { width: number; height: number } {
  if ('height' in target) return { width: target.width, height: target.height };
  const s = target.shortestEdge;
  return width <= height
    ? { width: s, height: Math.floor((s * height) / width) }
    : { width: Math.floor((s * width) / height), height: s };
}

/** Size of the pixel values a frame of this size becomes. */
export function outputSize(config: ProcessorConfig, width: number, height: number): { width: number; height: number } {
  if (config.doCenterCrop) return { ...config.cropSize };
  return config.doResize ? resizedSize(config.size, width, height) : { width, height };
}

/** One frame → CHW Float32Array of 3 × height × width. */
export function preprocess(frame: Frame, config: ProcessorConfig): Float32Array {
  const { width, height } = outputSize(config, frame.width, frame.height);
  const out = new Float32Array(3 * width * height);
  preprocessInto(frame, config, out, 0);
  return out;
}

/** Many frames → one [F, 3, H, W] batch; every frame must come out the same size. */
export function preprocessBatch(frames: readonly Frame[], config: ProcessorConfig): PixelBatch {
  if (frames.length === 0) throw new UsageError('no frames to preprocess');
  const sizes = frames.map((f) => outputSize(config, f.width, f.height));
  const { width, height } = sizes[0];
  const odd = sizes.findIndex((s) => s.width !== width || s.height !== height);
  if (odd >= 0) {
    throw new UsageError(
      `frame ${odd} comes out ${sizes[odd].width}×${sizes[odd].height}, frame 0 ${width}×${height}: ` +
        'a batch needs one size',
      'give frames of one aspect ratio, or a processor that centre-crops',
    );
  }
  const per = 3 * width * height;
  const data = new Float32Array(frames.length * per);
  for (const [i, f] of frames.entries()) preprocessInto(f, config, data, i * per);
  return { data, dims: [frames.length, 3, height, width] };
}

function preprocessInto(frame: Frame, config: ProcessorConfig, out: Float32Array, offset: number): void {
  const resized = config.doResize
    ? resizedSize(config.size, frame.width, frame.height)
    : { width: frame.width, height: frame.height };
  const pixels = resizeRgb(frame, resized.width, resized.height, config.resample);
  const crop = config.doCenterCrop ? config.cropSize : resized;
  // transformers' center_crop: floor offsets; where the crop is larger than the image it pads with 0.
  const top = Math.floor((resized.height - crop.height) / 2);
  const left = Math.floor((resized.width - crop.width) / 2);
  const plane = crop.width * crop.height;
  const luts = valueTables(config);
  for (let c = 0; c < 3; c++) {
    const lut = luts[c];
    const base = offset + c * plane;
    for (let y = 0; y < crop.height; y++) {
      const sy = y + top;
      const row = base + y * crop.width;
      const inside = sy >= 0 && sy < resized.height;
      for (let x = 0; x < crop.width; x++) {
        const sx = x + left;
        out[row + x] = lut[inside && sx >= 0 && sx < resized.width ? pixels[(sy * resized.width + sx) * 3 + c] : 0];
      }
    }
  }
}

/** The rescale and normalise steps of an HF image processor. */
export type PixelScaling = Pick<
  ProcessorConfig,
  'doRescale' | 'rescaleFactor' | 'doNormalize' | 'imageMean' | 'imageStd'
>;

/**
 * Per channel, the value of each byte: rescale in float64 then cast to float32, then
 * (x − mean) / std in float32, as transformers' rescale and normalize compute it.
 */
export function valueTables(config: PixelScaling): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const mean = Math.fround(config.imageMean[c]);
    const std = Math.fround(config.imageStd[c]);
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      const x = config.doRescale ? Math.fround(v * config.rescaleFactor) : v;
      lut[v] = config.doNormalize ? Math.fround(x - mean) / std : x;
    }
    return lut;
  });
}

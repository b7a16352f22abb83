import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import type { Idefics3Config } from './idefics3-config.js';
import { JsonFields, readJsonObject } from './json-file.js';
import type { Resample } from './processor-config.js';

/** PIL's resample codes, as preprocessor_config.json stores them. */
const RESAMPLE: Resample[] = ['nearest', 'lanczos', 'bilinear', 'bicubic', 'box', 'hamming'];
const HALF = [0.5, 0.5, 0.5] as const;

export type Idefics3ResizeTarget = { longestEdge: number } | { height: number; width: number };

/**
 * Idefics3ImageProcessor / SmolVLMImageProcessor settings (preprocessor_config.json), and SmolVLM2's video
 * settings (`video_sampling`).
 */
export interface Idefics3ProcessorConfig {
  doResize: boolean;
  /** The first resize: the longest edge to this (upscaling too), or an exact size. */
  size: Idefics3ResizeTarget;
  resample: Resample;
  doImageSplitting: boolean;
  /** Side of every tile, the global image and every video frame (`max_image_size.longest_edge`). */
  maxImageSize: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  video: {
    /**
     * Frames are resized to this first, then to a maxImageSize square (never split). SmolVLMVideoProcessor
     * takes `size` when the file has one (it overrides `video_sampling.video_size`), else `video_size`.
     */
    size: Idefics3ResizeTarget;
    /**
     * SmolVLMVideoProcessor resizes with torchvision, which has no LANCZOS: it uses BICUBIC instead (antialiased,
     * on uint8, Pillow's kernel). Other filters are used as configured.
     */
    resample: Resample;
    /** SmolVLM2's sampling: `fps` frames per second, at most `maxFrames` (null without `video_sampling`). */
    fps: number | null;
    maxFrames: number | null;
  };
}

/** Reads preprocessor_config.json; without the file, transformers' Idefics3ImageProcessor defaults apply. */
export function readIdefics3ProcessorConfig(dir: string, model: Idefics3Config): Idefics3ProcessorConfig {
  const file = join(dir, 'preprocessor_config.json');
  const f = new JsonFields(file, existsSync(file) ? readJsonObject(file, '') : {});
  const maxImageSize = f.has('max_image_size') ? f.sub('max_image_size').int('longest_edge') : 364;
  if (maxImageSize !== model.vision.imageSize) {
    throw new ModelError(
      `${file}: max_image_size.longest_edge ${maxImageSize} is not the vision tower's image_size ` +
        `${model.vision.imageSize} (config.json vision_config)`,
      'the preprocessor config does not belong to this checkpoint: download it again',
    );
  }
  const resample = readResample(f);
  const sampling = f.has('video_sampling') ? f.sub('video_sampling') : null;
  const size = resizeTarget(f);
  const config: Idefics3ProcessorConfig = {
    doResize: f.bool('do_resize', true),
    size,
    resample,
    doImageSplitting: f.bool('do_image_splitting', true),
    maxImageSize,
    doRescale: f.bool('do_rescale', true),
    rescaleFactor: f.positive('rescale_factor', 1 / 255),
    doNormalize: f.bool('do_normalize', true),
    imageMean: f.numberTriple('image_mean', HALF),
    imageStd: f.numberTriple('image_std', HALF),
    video: {
      size:
        !f.has('size') && sampling?.has('video_size')
          ? { longestEdge: sampling.sub('video_size').int('longest_edge') }
          : size,
      resample: resample === 'lanczos' ? 'bicubic' : resample,
      fps: sampling ? sampling.positive('fps') : null,
      maxFrames: sampling ? sampling.int('max_frames') : null,
    },
  };
  if (config.imageStd.some((v) => v <= 0)) f.fail('image_std', 'must be positive');
  return config;
}

function resizeTarget(f: JsonFields): Idefics3ResizeTarget {
  if (!f.has('size')) return { longestEdge: 4 * 364 };
  const sub = f.sub('size');
  if (sub.has('longest_edge')) return { longestEdge: sub.int('longest_edge') };
  if (sub.has('height') || sub.has('width')) return { height: sub.int('height'), width: sub.int('width') };
  return f.fail('size', 'must have longest_edge, or height and width');
}

function readResample(f: JsonFields): Resample {
  if (!f.has('resample')) return 'lanczos';
  const code = f.int('resample', undefined, 0);
  const name = RESAMPLE[code];
  if (!name) f.fail('resample', `must be a PIL resample code 0..5, got ${code}`);
  return name;
}

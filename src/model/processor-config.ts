import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { isObject, JsonFields, readJsonObject } from './json-file.js';
import type { VisionConfig } from './vlm-config.js';

export type Resample = 'nearest' | 'lanczos' | 'bilinear' | 'bicubic' | 'box' | 'hamming';

/** PIL's resample codes, as preprocessor_config.json stores them. */
const RESAMPLE: Resample[] = ['nearest', 'lanczos', 'bilinear', 'bicubic', 'box', 'hamming'];

export type ResizeTarget = { shortestEdge: number } | { height: number; width: number };

/** Image preprocessing as HF's CLIPImageProcessor / SiglipImageProcessor do it, in this order. */
export interface ProcessorConfig {
  doResize: boolean;
  size: ResizeTarget;
  resample: Resample;
  doCenterCrop: boolean;
  cropSize: { height: number; width: number };
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;
const HALF = [0.5, 0.5, 0.5] as const;

/** Reads preprocessor_config.json; without the file, the vision family's processor defaults apply. */
export function readProcessorConfig(dir: string, vision: VisionConfig): ProcessorConfig {
  const file = join(dir, 'preprocessor_config.json');
  const f = new JsonFields(file, existsSync(file) ? readJsonObject(file, '') : {});
  const clip = vision.family === 'clip';
  const s = vision.imageSize;

  const config: ProcessorConfig = {
    doResize: f.bool('do_resize', true),
    size: resizeTarget(f, 'size', clip ? { shortestEdge: s } : { height: s, width: s }, clip),
    resample: resample(f, clip ? 'bicubic' : 'bilinear'),
    doCenterCrop: f.bool('do_center_crop', clip),
    cropSize: square(f, 'crop_size', s),
    doRescale: f.bool('do_rescale', true),
    rescaleFactor: f.positive('rescale_factor', 1 / 255),
    doNormalize: f.bool('do_normalize', true),
    imageMean: f.numberTriple('image_mean', clip ? CLIP_MEAN : HALF),
    imageStd: f.numberTriple('image_std', clip ? CLIP_STD : HALF),
  };
  if (config.imageStd.some((v) => v <= 0)) f.fail('image_std', 'must be positive');

  const out = config.doCenterCrop ? config.cropSize : config.doResize && 'height' in config.size ? config.size : null;
  if (out && (out.height !== s || out.width !== s)) {
    throw new ModelError(
      `${file}: images come out ${out.width}×${out.height} but the vision tower takes ${s}×${s} ` +
        '(config.json vision_config.image_size)',
      'the preprocessor config does not belong to this checkpoint: download it again',
    );
  }
  return config;
}

function resizeTarget(f: JsonFields, key: string, fallback: ResizeTarget, intIsShortestEdge: boolean): ResizeTarget {
  if (!f.has(key)) return fallback;
  const v = f.obj[key];
  if (typeof v === 'number') {
    const n = f.int(key);
    return intIsShortestEdge ? { shortestEdge: n } : { height: n, width: n };
  }
  if (!isObject(v)) f.fail(key, 'must be a number or an object');
  const sub = f.sub(key);
  if (sub.has('shortest_edge')) return { shortestEdge: sub.int('shortest_edge') };
  if (sub.has('height') || sub.has('width')) return { height: sub.int('height'), width: sub.int('width') };
  return f.fail(key, 'must have shortest_edge, or height and width');
}

function square(f: JsonFields, key: string, fallback: number): { height: number; width: number } {
  if (!f.has(key)) return { height: fallback, width: fallback };
  if (typeof f.obj[key] === 'number') {
    const n = f.int(key);
    return { height: n, width: n };
  }
  const sub = f.sub(key);
  return { height: sub.int('height'), width: sub.int('width') };
}

function resample(f: JsonFields, fallback: Resample): Resample {
  if (!f.has('resample')) return fallback;
  const code = f.int('resample', undefined, 0);
  const name = RESAMPLE[code];
  if (!name) f.fail('resample', `must be a PIL resample code 0..5, got ${code}`);
  return name;
}

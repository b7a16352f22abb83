import { extname } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { fitFramesToContext } from '../engine/context-fit.js';
import { MediaError, UsageError } from '../errors.js';
import { isAnimatedImage } from '../media/animated-image.js';
import type { Frame } from '../media/frame.js';
import { evenlyPicked, planSamples, type Sampling } from '../media/frame-plan.js';
import { imageFrames } from '../media/image-source.js';
import { type ProbedVideo, probeVideo } from '../media/probe.js';
import { videoFrames } from '../media/sampler.js';
import type { Checkpoint } from '../model/checkpoint.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif', '.tif', '.tiff', '.avif']);

/** Which frames an answer is about, decided before any pixel is decoded. */
export interface FramePlan {
  /** The frames the sampling (or the images given) asked for: timestamps, seconds. */
  requested: number[];
  /** The ones used: all of them, or as many as the model's context holds, spread evenly. */
  used: number[];
  /** Why fewer are used, for the one-line notice. */
  limit?: { frames: number; context: number; promptTokens: number };
  read(): Promise<Frame[]>;
  /** The same plan using `frames` of the requested frames, spread evenly (a memory budget's choice). */
  thinned(frames: number): FramePlan;
}

/**
 * Plans the frames of `sieve ask`: a video is probed (not decoded) and sampled by `sampling`; several
 * images are the frames. When the prompt with every requested frame's visual tokens and the answer
 * would not fit the model's positions, the frames are thinned evenly to what fits.
 */
export async function planAskFrames(
  inputs: readonly string[],
  sampling: Sampling,
  model: Checkpoint,
  question: string,
  maxNewTokens: number,
): Promise<FramePlan> {
  const images = inputs.filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase()));
  // One animated image (GIF, APNG, animated WebP) is a video: its frames, with their own times.
  const animated = inputs.length === 1 && (await isAnimatedImage(inputs[0]));
  if (images.length === inputs.length && !animated) {
    const requested = images.map((_, i) => i);
    return planned(requested, model, question, maxNewTokens, (used) => {
      const chosen = used.map((i) => images[i]);
      return lastValueFrom(imageFrames(chosen).pipe(toArray()));
    });
  }
  if (inputs.length > 1) {
    throw new UsageError(
      `give one video, or one or more images; got ${inputs.length} inputs of which ` +
        `${inputs.length - images.length} are not images`,
    );
  }
  const file = inputs[0];
  const probed: ProbedVideo = await probeVideo(file);
  const { requested } = planSamples(probed.info, sampling);
  return planned(requested, model, question, maxNewTokens, async (used) => {
    const frames = await lastValueFrom(
      videoFrames(file, { timestamps: used }, { probed, fit: model.family.decodeFit }).pipe(toArray()),
    );
    if (frames.length === 0) {
      throw new MediaError(
        `no frames could be decoded from ${file}`,
        'check that the video plays, or sample with --frames instead of --fps',
      );
    }
    return frames;
  });
}

function planned(
  requested: number[],
  model: Checkpoint,
  question: string,
  maxNewTokens: number,
  read: (used: number[]) => Promise<Frame[]>,
): FramePlan {
  const fit = fitFramesToContext(model, question, requested.length, maxNewTokens, (k) => evenlyPicked(requested, k));
  const using = (frames: number): FramePlan => {
    const used = evenlyPicked(requested, frames);
    return {
      requested,
      used,
      ...(fit.frames < requested.length ? { limit: fit } : {}),
      read: () => read(used),
      thinned: using,
    };
  };
  return using(fit.frames);
}

/** The one line `sieve ask` prints when the context holds fewer frames than asked for. */
export function fewerFramesNotice(plan: FramePlan, maxNewTokens: number): string {
  const { limit } = plan;
  if (!limit) return '';
  return (
    `${plural(plan.requested.length, 'frame')} requested, ${limit.frames} fit the model's context ` +
    `(${limit.context} positions for the prompt with its visual tokens and ${maxNewTokens} answer tokens): ` +
    `using ${limit.frames} spread evenly (--strict refuses instead)`
  );
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

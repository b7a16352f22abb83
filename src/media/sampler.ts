/**
 * Frame sources and sampling as RxJS. A video file source hands its sampling to ffmpeg, so only the
 * chosen frames are decoded to RGB; the operators apply the same rules to any Frame stream (a
 * camera). More sampling policies (a change gate) are further MonoTypeOperatorFunction<Frame>s.
 */

import type { MonoTypeOperatorFunction } from 'rxjs';
import { defer, filter, map, Observable } from 'rxjs';
import { UsageError } from '../errors.js';
import type { ResizeTarget } from '../model/processor-config.js';
import type { Frame } from './frame.js';
import { type DecodeOptions, decodeFrames } from './frame-decoder.js';
import { type DecodePlan, type DecodeStrategy, planSamples, type Sampling } from './frame-plan.js';
import type { ProbedVideo } from './probe.js';

export type { Sampling } from './frame-plan.js';
export { uniformTimestamps } from './frame-plan.js';

/** A sampling, or the exact timestamps to decode (seconds on the file's timeline, e.g. a plan's `used`). */
export type FrameRequest = Sampling | { timestamps: readonly number[] };

export interface VideoFramesOptions {
  /** At most this many frames (default and ceiling MAX_FRAMES): a longer sampling is thinned evenly (planSamples). */
  maxFrames?: number;
  /** Keep frames at what this resize step needs, scaled down in ffmpeg (fitFor(processor)); never scaled up. */
  fit?: ResizeTarget;
  /** Scale every frame to exactly this size instead. */
  size?: { width: number; height: number };
  /** auto (default), linear or seek. */
  strategy?: DecodeStrategy;
  /** The file's probe (probeVideo), when the caller has made it: not probed again. */
  probed?: ProbedVideo;
  /** Told the decode plan before decoding starts. */
  onPlan?: (plan: DecodePlan) => void;
}

/** Sampled frames of a video file, in time order; unsubscribing stops ffmpeg. */
export function videoFrames(file: string, request: FrameRequest, options: VideoFramesOptions = {}): Observable<Frame> {
  return new Observable<Frame>((subscriber) => {
    const abort = new AbortController();
    const { maxFrames, ...rest } = options;
    const decode: DecodeOptions = {
      ...rest,
      timestamps: 'timestamps' in request ? request.timestamps : (video) => planSamples(video, request, maxFrames).used,
      signal: abort.signal,
    };
    void (async () => {
      try {
        for await (const frame of decodeFrames(file, decode)) {
          if (subscriber.closed) return;
          subscriber.next(frame);
        }
        subscriber.complete();
      } catch (err) {
        if (!abort.signal.aborted) subscriber.error(err);
      }
    })();
    return () => abort.abort();
  });
}

/**
 * Keeps the first frame at or after each multiple of 1/fps seconds, less `leadS` (a file source
 * uses half a frame interval, which picks the frame nearest to each multiple). The rule the file
 * source gives ffmpeg, for streams that are already decoded.
 */
export function sampleFps(fps: number, leadS = 0): MonoTypeOperatorFunction<Frame> {
  if (!(Number.isFinite(fps) && fps > 0)) throw new UsageError(`sampling rate must be a positive number, got ${fps}`);
  return (source) =>
    defer(() => {
      let previous: number | undefined;
      return source.pipe(
        filter((frame) => {
          const cell = Math.floor((frame.timestampS + leadS) * fps);
          const keep = previous === undefined || cell > previous;
          previous = cell;
          return keep;
        }),
      );
    });
}

/** Numbers frames by their position in this stream, from 0. */
export function renumber(): MonoTypeOperatorFunction<Frame> {
  return map((frame, index) => ({ ...frame, index }));
}

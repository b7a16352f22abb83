/**
 * Frame sources and sampling as RxJS. A video file source hands its sampling to ffmpeg, so only the
 * chosen frames are decoded to RGB; the operators apply the same rules to any Frame stream (a
 * camera). More sampling policies (a change gate) are further MonoTypeOperatorFunction<Frame>s.
 */

import type { MonoTypeOperatorFunction } from 'rxjs';
import { defer, filter, map, Observable } from 'rxjs';
import { UsageError } from '../errors.js';
import type { DecodeOptions, VideoInfo } from './ffmpeg.js';
import { decodeFrames } from './ffmpeg.js';
import type { Frame } from './frame.js';

/** N frames spread evenly over the whole video, or frames at a fixed rate. */
export type Sampling = { frames: number } | { fps: number };

/** `count` timestamps at the centres of `count` equal segments of [startS, startS + durationS]. */
export function uniformTimestamps(count: number, durationS: number, startS = 0): number[] {
  if (!Number.isInteger(count) || count < 1)
    throw new UsageError(`frame count must be a whole number ≥ 1, got ${count}`);
  return Array.from({ length: count }, (_, i) => startS + ((i + 0.5) * durationS) / count);
}

/** Sampled frames of a video file; unsubscribing stops ffmpeg. */
export function videoFrames(
  file: string,
  sampling: Sampling,
  options: { size?: { width: number; height: number } } = {},
): Observable<Frame> {
  return new Observable<Frame>((subscriber) => {
    const abort = new AbortController();
    const decode: DecodeOptions = {
      ...options,
      ...('frames' in sampling
        ? { timestamps: (v: VideoInfo) => uniformTimestamps(sampling.frames, v.durationS, v.startS) }
        : { fps: sampling.fps }),
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

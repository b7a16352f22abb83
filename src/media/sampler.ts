/**
 * A video file's sampled frames as an RxJS stream: the sampling is handed to ffmpeg, so only the chosen
 * frames are decoded to RGB. (Live sources, which sample a stream as it comes, are in live-source.ts.)
 */
import { Observable } from 'rxjs';
import type { Frame } from './frame.js';
import { type DecodeOptions, decodeFrames } from './frame-decoder.js';
import { planSamples, type Sampling } from './frame-plan.js';

export type { Sampling } from './frame-plan.js';
export { uniformTimestamps } from './frame-plan.js';

/** A sampling, or the exact timestamps to decode (seconds on the file's timeline, e.g. a plan's `used`). */
export type FrameRequest = Sampling | { timestamps: readonly number[] };

/** How videoFrames decodes: the decoder's options, less the sampling (the request) and the abort signal (unsubscribe). */
export type VideoFramesOptions = Pick<DecodeOptions, 'maxFrames' | 'fit' | 'size' | 'strategy' | 'probed' | 'onPlan'>;

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

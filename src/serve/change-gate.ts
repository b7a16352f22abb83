import { defer, filter, type MonoTypeOperatorFunction } from 'rxjs';
import { staticFraction } from '../prune/patch-similarity.js';
import type { WindowFrame } from './rolling-window.js';

export interface ChangeGateOptions {
  /** A patch is static when its cosine with the same patch of the last kept frame is at least this. */
  tauStatic: number;
  /** A frame with at least this fraction of static patches is skipped. */
  staticFraction: number;
  /** A frame is kept at least this often, however still the scene. */
  maxGapS: number;
}

/**
 * Skips frames that are nearly the same as the last kept one, by ViTCoP Stage 0's test on the
 * feature-layer states (so a still camera does not fill the window with copies). `onSkip` counts them.
 */
export function changeGate(
  options: ChangeGateOptions,
  onSkip: (frame: WindowFrame) => void,
): MonoTypeOperatorFunction<WindowFrame> {
  return (source) =>
    defer(() => {
      let last: WindowFrame | undefined;
      return source.pipe(
        filter((frame) => {
          const width = last ? frame.features.length / frame.saliency.length : 0;
          const keep =
            !last ||
            frame.timestampS - last.timestampS >= options.maxGapS ||
            frame.timestampS < last.timestampS ||
            staticFraction(frame.features, last.features, width, options.tauStatic) < options.staticFraction;
          if (keep) last = frame;
          else onSkip(frame);
          return keep;
        }),
      );
    });
}

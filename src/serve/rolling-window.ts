import type { EncodedFrame } from '../engine/answer-pipeline.js';

export interface WindowLimits {
  /** Frames older than the newest one by more than this leave the window. */
  seconds: number;
  maxFrames: number;
  /** Visual tokens held at most (frames × tokens per frame). */
  maxTokens?: number;
  tokensPerFrame: number;
}

/** A camera frame after the vision encoder, with when it arrived. */
export interface WindowFrame extends EncodedFrame {
  /** Wall-clock time the frame was decoded (ms since the epoch). */
  receivedAt: number;
}

/**
 * The last seconds of a camera as encoder outputs (never pixels), bounded by time, by frames and by
 * visual tokens, oldest first. A query takes a snapshot and reads it while new frames keep arriving.
 */
export class RollingWindow {
  private frames: WindowFrame[] = [];
  private readonly capacity: number;

  constructor(private readonly limits: WindowLimits) {
    const byTokens = limits.maxTokens === undefined ? Infinity : Math.floor(limits.maxTokens / limits.tokensPerFrame);
    this.capacity = Math.max(1, Math.min(limits.maxFrames, byTokens));
  }

  add(frame: WindowFrame): void {
    const last = this.frames.at(-1);
    // A restarted source may start its clock again: the window only moves forward.
    if (last && frame.timestampS <= last.timestampS) this.frames = [];
    this.frames.push(frame);
    const oldest = frame.timestampS - this.limits.seconds;
    let drop = 0;
    while (drop < this.frames.length - 1 && this.frames[drop].timestampS < oldest) drop++;
    drop = Math.max(drop, this.frames.length - this.capacity);
    if (drop > 0) this.frames = this.frames.slice(drop);
  }

  /**
   * The frames of the last `seconds` (default: the whole window), at most `maxFrames` of them spread
   * evenly over that span, oldest first.
   */
  snapshot({ seconds, maxFrames }: { seconds?: number; maxFrames?: number } = {}): WindowFrame[] {
    const newest = this.frames.at(-1);
    if (!newest) return [];
    const from = seconds === undefined ? -Infinity : newest.timestampS - seconds;
    const span = this.frames.filter((f) => f.timestampS >= from);
    if (maxFrames === undefined || span.length <= maxFrames) return span;
    return evenlySpaced(span, maxFrames);
  }

  get size(): number {
    return this.frames.length;
  }

  /** Bytes of encoder outputs held (features, saliency and keys). */
  get bytes(): number {
    return this.frames.reduce(
      (sum, f) => sum + f.features.byteLength + f.saliency.byteLength + (f.keys?.byteLength ?? 0),
      0,
    );
  }

  /** Seconds between the oldest and the newest frame. */
  get spanS(): number {
    const first = this.frames[0];
    const last = this.frames.at(-1);
    return first && last ? last.timestampS - first.timestampS : 0;
  }

  clear(): void {
    this.frames = [];
  }
}

/** `count` of `items` spread evenly, always including the last one (the newest frame). */
export function evenlySpaced<T>(items: readonly T[], count: number): T[] {
  if (count >= items.length) return [...items];
  if (count <= 1) return items.slice(-1);
  const step = (items.length - 1) / (count - 1);
  return Array.from({ length: count }, (_, i) => items[Math.round(i * step)]);
}

/**
 * Which frames of a video to decode, and how — pure functions, no ffmpeg: the timestamps a sampling
 * asks for and the ones used under a frame cap (planSamples), the frame on screen at each of them,
 * whether to decode linearly or seek to each one's keyframe, and the size frames are kept at (planDecode).
 */
import { MediaError, UsageError } from '../errors.js';
import type { ProcessorConfig, ResizeTarget } from '../model/processor-config.js';
import { smartResize } from '../vision/qwen2vl-processor.js';
import { MAX_FRAMES } from './frame.js';

/** N frames spread evenly over the whole video, or frames at a fixed rate. */
export type Sampling = { frames: number } | { fps: number };

/** What sampling needs to know of a video (VideoInfo has it). */
export interface Timeline {
  /** Length of the video stream, seconds. */
  durationS: number;
  /** Where it starts on the file's timeline. */
  startS: number;
  /** Average frame rate. */
  fps: number;
}

export interface SamplePlan {
  /** The timestamps the sampling asks for, ascending, in seconds on the file's timeline. */
  requested: number[];
  /** The ones to decode: all of them, or `maxFrames` picked evenly among them. */
  used: number[];
}

/** `count` timestamps at the centres of `count` equal segments of [startS, startS + durationS]. */
export function uniformTimestamps(count: number, durationS: number, startS = 0): number[] {
  if (!Number.isInteger(count) || count < 1)
    throw new UsageError(`frame count must be a whole number ≥ 1, got ${count}`);
  return Array.from({ length: count }, (_, i) => startS + ((i + 0.5) * durationS) / count);
}

/**
 * The multiples of 1/fps from the stream's start whose nearest frame exists: up to the end less half a
 * frame. A rate above the video's own gives each frame once (its frame rate is used instead).
 */
export function rateTimestamps(fps: number, video: Timeline): number[] {
  if (!(Number.isFinite(fps) && fps > 0)) {
    throw new UsageError(`sampling rate must be a positive number of frames per second, got ${fps}`);
  }
  const rate = Math.min(fps, video.fps);
  const last = video.durationS - 0.5 / video.fps;
  const count = Math.max(1, Math.floor(last * rate + 1e-9) + 1);
  return Array.from({ length: count }, (_, k) => video.startS + k / rate);
}

/**
 * The timestamps a sampling asks for over a video, and the ones used: when there are more than
 * `maxFrames` (at most MAX_FRAMES), the middle one of each of `maxFrames` equal runs of them, so the used
 * frames spread over the whole video as evenly as the requested ones did.
 */
export function planSamples(video: Timeline, sampling: Sampling, maxFrames: number = MAX_FRAMES): SamplePlan {
  if (!Number.isInteger(maxFrames) || maxFrames < 1 || maxFrames > MAX_FRAMES) {
    throw new UsageError(`the frame cap must be a whole number in 1..${MAX_FRAMES}, got ${maxFrames}`);
  }
  const requested =
    'frames' in sampling
      ? uniformTimestamps(sampling.frames, video.durationS, video.startS)
      : rateTimestamps(sampling.fps, video);
  return { requested, used: evenlyPicked(requested, maxFrames) };
}

/** `count` items evenly spread over `items` (all of them when there are no more than `count`). */
export function evenlyPicked<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) return [...items];
  return Array.from({ length: count }, (_, i) => items[Math.floor(((i + 0.5) * items.length) / count)] as T);
}

// ---------------------------------------------------------------------------------------------
// Size

/**
 * A pixel budget, as Qwen2-VL's smart resize applies it: both sides a multiple of `factor`, the area within
 * [minPixels, maxPixels], the aspect ratio kept.
 */
export interface PixelBudget {
  factor: number;
  minPixels: number;
  maxPixels: number;
}

/** What frames are decoded for: a fixed resize target, or a pixel budget whose size depends on the frame's. */
export type DecodeFit = ResizeTarget | PixelBudget;

/** The resize step frames are decoded for: a preprocessor's resize target, or none when it keeps the size. */
export function fitFor(processor: ProcessorConfig): ResizeTarget | undefined {
  return processor.doResize ? processor.size : undefined;
}

/**
 * The size to keep frames of `width`×`height` at, so that the preprocessor's resize to `fit` has what it
 * needs and no more: the shorter side brought down to the shortest edge (the longer side truncated, as
 * transformers computes it, so the preprocessor's own resize is then the identity), or each side down to
 * the exact target, or to the pixel budget's own resize of the frame (which it then leaves as it is). Never
 * larger than the frame on either side: undefined when the frame is already small enough.
 */
export function keptSize(
  width: number,
  height: number,
  fit: DecodeFit | undefined,
): { width: number; height: number } | undefined {
  if (!fit) return undefined;
  if ('maxPixels' in fit) {
    // Too small for the processor: decoded as it is, the processor then says why.
    if (Math.min(width, height) < fit.factor || Math.max(width, height) / Math.min(width, height) > 200)
      return undefined;
    const kept = smartResize(height, width, fit.factor, fit.minPixels, fit.maxPixels);
    const smaller = kept.width <= width && kept.height <= height && kept.width * kept.height < width * height;
    return smaller ? kept : undefined;
  }
  if ('shortestEdge' in fit) {
    const s = fit.shortestEdge;
    if (Math.min(width, height) <= s) return undefined;
    return width <= height
      ? { width: s, height: Math.floor((s * height) / width) }
      : { width: Math.floor((s * width) / height), height: s };
  }
  const kept = { width: Math.min(width, fit.width), height: Math.min(height, fit.height) };
  return kept.width === width && kept.height === height ? undefined : kept;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** A frame whose presentation time is known without decoding it (from the container's packets). */
export interface KnownFrame {
  /** Seconds on the file's timeline. */
  t: number;
  key: boolean;
}

/** Frames listed by the prober: complete within each covered span of the file's timeline. */
export interface FrameList {
  /** Ascending by time. */
  frames: KnownFrame[];
  covered: { fromS: number; toS: number }[];
}

export type DecodeStrategy = 'auto' | 'linear' | 'seek';

/** One stretch of the file decoded in a row: an input of ffmpeg. */
export interface DecodeSegment {
  /** Input seek, seconds on the file's timeline (0: from the start). ffmpeg drops the frames before it. */
  seekS: number;
  /** Stop reading after this time, when the last frame wanted is known. */
  endS?: number;
  /** One per frame kept, ascending: the first frame at or after each threshold (file timeline) is kept. */
  thresholds: number[];
  /** Frames decoded for this segment (an estimate without a frame list). */
  decodedFrames: number;
}

export interface DecodePlan {
  /** linear: one pass from the first wanted frame to the last; seek: a seek to the keyframe before each stretch. */
  strategy: 'linear' | 'seek';
  segments: DecodeSegment[];
  /** Segments per ffmpeg run, in order (each run is one process with one input per segment). */
  runs: number[][];
  /** The requests, ascending, and the threshold each one's frame is found by (several can share one frame). */
  requests: { t: number; threshold: number }[];
  /** Scale frames to this inside ffmpeg; undefined: keep the decoded size. */
  size?: { width: number; height: number };
  /** Frames decoded in all (an estimate without a frame list). */
  decodedFrames: number;
}

export interface DecodePlanOptions {
  /** Frame times known from the container (the on-screen rule and the seek plan need them). */
  frameList?: FrameList;
  /** Keep frames at what this resize step needs (never larger than decoded). */
  fit?: DecodeFit;
  /** Scale to exactly this size instead. */
  size?: { width: number; height: number };
  /** Default auto: seek when it decodes fewer frames. */
  strategy?: DecodeStrategy;
  /** The container seeks reliably (MP4, Matroska); otherwise one linear pass from the start. */
  seekable?: boolean;
  /** Seeks land on whole multiples of this (a whole number of the stream's ticks and of microseconds). */
  seekGrainS?: number;
  /** For messages. */
  name?: string;
}

/** What opening one more input and seeking costs, in frames decoded (measured at 1080p: ~20–40). */
export const SEEK_COST_FRAMES = 30;
/** Inputs of one ffmpeg run at 1080p (each holds a decoder's buffers until the run ends): fewer for larger frames. */
const INPUTS_PER_RUN_1080P = 8;

interface Pick {
  threshold: number;
  /** The frame this request gets, when the frame list knows it. */
  frame?: number;
  /** Where the next frame would begin to be taken (half-way to it), when known. */
  windowEnd?: number;
  /** The keyframe decoding it starts from, when known. */
  key?: number;
}

/**
 * How to decode one frame for each timestamp (seconds on the file's timeline): the frame on screen at
 * that time — the last frame shown before t + half the usual frame interval, so the nearest one where
 * frames come regularly and the one still shown inside a gap (variable frame rate) — found by thresholds
 * between known frames; without a frame list, the first frame at or after t − half a frame.
 */
export function planDecode(
  video: Timeline & { width: number; height: number },
  timestamps: readonly number[],
  options: DecodePlanOptions = {},
): DecodePlan {
  checkTimestamps(video, timestamps, options.name);
  const end = video.startS + video.durationS;
  const frameS = 1 / video.fps;
  const list = options.frameList;
  const sorted = [...timestamps].sort((a, b) => a - b);
  const requests: DecodePlan['requests'] = [];
  const picks: Pick[] = [];
  const cadenceS = list ? typicalInterval(list.frames, frameS) : frameS;
  for (const t of sorted) {
    const pick = pickFrame(t, cadenceS, frameS, end, list);
    const last = picks[picks.length - 1];
    if (last && pick.threshold <= last.threshold)
      pick.threshold = last.threshold; // the same frame again
    else picks.push(pick);
    requests.push({ t, threshold: pick.threshold });
  }
  const size = options.size ?? keptSize(video.width, video.height, options.fit);
  const strategy = options.strategy ?? 'auto';
  const count = (from: number, to: number) => framesBetween(from, to, frameS, list);

  const segments: DecodeSegment[] = [];
  let current: { start: number | undefined; picks: Pick[] } | undefined;
  for (const pick of picks) {
    const prev = current?.picks[current.picks.length - 1];
    const key = pick.key;
    let split = !current;
    if (current && prev && strategy !== 'linear' && options.seekable && key !== undefined && pick.frame !== undefined) {
      const prevEnd = prev.frame ?? prev.threshold;
      if (key > prevEnd) {
        const onward = count(prevEnd, pick.frame);
        const fromKey = count(key, pick.frame) + SEEK_COST_FRAMES;
        split = strategy === 'seek' || fromKey < onward;
      }
    }
    if (split) {
      if (current) segments.push(segmentOf(current.picks, current.start, frameS, options, count));
      current = { start: pick.key, picks: [pick] };
    } else {
      current?.picks.push(pick);
    }
  }
  if (current) segments.push(segmentOf(current.picks, current.start, frameS, options, count));
  const decodedFrames = segments.reduce((sum, s) => sum + s.decodedFrames, 0);

  // Each input keeps a decoder (at the decoded size, whatever the size kept) until its run ends.
  const perRun = Math.max(
    1,
    Math.min(INPUTS_PER_RUN_1080P, Math.floor((INPUTS_PER_RUN_1080P * 1920 * 1080) / (video.width * video.height))),
  );
  const runs: number[][] = [];
  for (let i = 0; i < segments.length; i += perRun) {
    runs.push(Array.from({ length: Math.min(perRun, segments.length - i) }, (_, k) => i + k));
  }
  return {
    strategy: segments.length > 1 ? 'seek' : 'linear',
    segments,
    runs,
    requests,
    ...(size ? { size } : {}),
    decodedFrames,
  };
}

/** Refuses more than MAX_FRAMES timestamps, and timestamps outside the video. */
export function checkTimestamps(video: Timeline, timestamps: readonly number[], name = 'the video'): void {
  if (timestamps.length > MAX_FRAMES) {
    throw new UsageError(
      `${timestamps.length} timestamps requested; at most ${MAX_FRAMES} per decode`,
      'sample fewer frames, or cap them (maxFrames)',
    );
  }
  const end = video.startS + video.durationS;
  for (const t of timestamps) {
    if (!Number.isFinite(t) || t < 0 || t > end + 1e-6) {
      throw new MediaError(
        `timestamp ${t} s is outside ${name}, which runs from 0 to ${end.toFixed(3)} s`,
        'ask for frames within the video',
      );
    }
  }
}

function segmentOf(
  picks: readonly Pick[],
  keyS: number | undefined,
  frameS: number,
  options: DecodePlanOptions,
  count: (from: number, to: number) => number,
): DecodeSegment {
  const first = picks[0];
  const last = picks[picks.length - 1];
  if (!first || !last) throw new Error('a segment without frames');
  let seekS = 0;
  // Seeking pays once the wanted frame is more than a second in (ffmpeg goes to the keyframe before it).
  if (options.seekable && first.threshold - frameS > 1) {
    // A frame before the threshold: ffmpeg goes to the keyframe before it and drops the frames before it.
    // On whole ticks of the stream's time base and whole microseconds, so ffmpeg shifts timestamps by exactly it.
    const target = first.threshold - frameS;
    const grain = options.seekGrainS ?? 1e-6;
    seekS = Math.max(0, Math.round(Math.floor(target / grain) * grain * 1e6) / 1e6);
  }
  const lastFrame = last.frame ?? last.threshold;
  return {
    seekS,
    ...(last.windowEnd !== undefined ? { endS: last.windowEnd } : {}),
    thresholds: picks.map((p) => p.threshold),
    decodedFrames: count(seekS > 0 ? (keyS ?? seekS) : 0, lastFrame) + 1,
  };
}

/** Frames with a time in [from, to), from the list when it covers the span, else at the average rate. */
function framesBetween(from: number, to: number, frameS: number, list: FrameList | undefined): number {
  if (to <= from) return 0;
  if (list && isCovered(list, from) && isCovered(list, to)) {
    return lowerBound(list.frames, to) - lowerBound(list.frames, from);
  }
  return Math.round((to - from) / frameS);
}

/**
 * The interval frames usually come at: the median gap between known frames (the average frame rate
 * counts the pauses of a variable-rate video, an animated GIF that holds a frame for seconds).
 */
function typicalInterval(frames: readonly KnownFrame[], fallback: number): number {
  const gaps: number[] = [];
  for (let i = 1; i < frames.length; i++) {
    const gap = (frames[i]?.t ?? 0) - (frames[i - 1]?.t ?? 0);
    if (gap > 0) gaps.push(gap);
  }
  if (gaps.length === 0) return fallback;
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)] ?? fallback;
}

/** Request t's frame: the last known frame before t + half the usual interval, else by the average rate. */
function pickFrame(t: number, cadenceS: number, frameS: number, end: number, list: FrameList | undefined): Pick {
  const half = cadenceS / 2;
  const limit = t + half - 1e-6; // a frame exactly half-way belongs to the next request, as ffmpeg's nearest does
  if (list && list.frames.length > 0 && isCovered(list, limit)) {
    const frames = list.frames;
    const i = Math.max(0, lowerBound(frames, limit) - 1);
    const frame = frames[i];
    if (frame) {
      const before = frames[i - 1];
      const after = frames[i + 1];
      const gapBefore = before ? Math.min(half, frame.t - before.t) : half;
      const gapAfter = after ? Math.min(half, after.t - frame.t) : half;
      let key: number | undefined;
      for (let k = i; k >= 0; k--) {
        const f = frames[k];
        if (f?.key) {
          key = f.t;
          break;
        }
      }
      return {
        threshold: frame.t - gapBefore / 2,
        frame: frame.t,
        windowEnd: frame.t + gapAfter / 2,
        ...(key !== undefined ? { key } : {}),
      };
    }
  }
  // The first frame at or after t − half a frame is the nearest to t; never past the last frame.
  return { threshold: Math.min(t - frameS / 2, end - 1.5 * frameS) };
}

function isCovered(list: FrameList, t: number): boolean {
  return list.covered.some((c) => c.fromS <= t && t <= c.toS);
}

/** Index of the first frame at or after t. */
function lowerBound(frames: readonly KnownFrame[], t: number): number {
  let lo = 0;
  let hi = frames.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((frames[mid]?.t ?? Number.POSITIVE_INFINITY) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

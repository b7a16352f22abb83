/**
 * Decodes sampled frames of a video file to RGB with ffmpeg, following a DecodePlan (frame-plan.ts): one
 * ffmpeg run per group of segments, each segment an input seeked to its keyframe, the frames wanted
 * picked by a select filter, scaled to the size kept and converted to RGB inside ffmpeg.
 */
import { MediaError, UsageError } from '../errors.js';
import { decodeWebp } from './animated-image.js';
import { type Binaries, binaries } from './ffmpeg-binaries.js';
import { CORRUPT_HINT, ffmpegReason, isErrorLine } from './ffmpeg-messages.js';
import { type FfmpegInput, runFfmpeg } from './ffmpeg-process.js';
import type { Frame } from './frame.js';
import {
  checkTimestamps,
  type DecodeFit,
  type DecodePlan,
  type DecodeSegment,
  type DecodeStrategy,
  keptSize,
  planDecode,
  planSamples,
} from './frame-plan.js';
import { listFrames, type ProbedVideo, probeVideo, type VideoInfo } from './probe.js';
import { ShowinfoReader } from './showinfo.js';

export interface DecodeOptions {
  /**
   * Seconds on the file's timeline: one frame for each, the one on screen then (the nearest where frames
   * come regularly). Frames come in time order. A function receives the probed video (to sample over its
   * duration).
   */
  timestamps?: readonly number[] | ((video: VideoInfo) => readonly number[]);
  /** Frames at this rate: the frame nearest each multiple of 1/fps (see rateTimestamps). */
  fps?: number;
  /** At most this many frames when sampling at a rate (default and ceiling MAX_FRAMES), picked evenly. */
  maxFrames?: number;
  /** Keep frames at what this resize step needs, scaled down in ffmpeg (never up). */
  fit?: DecodeFit;
  /** Scale every frame to exactly this size (bicubic) inside ffmpeg. */
  size?: { width: number; height: number };
  /** auto (default): seek to each frame's keyframe when that decodes fewer frames than one linear pass. */
  strategy?: DecodeStrategy;
  /** This file's probe, made before (probeVideo): not probed again. */
  probed?: ProbedVideo;
  /** Told the plan before decoding starts. */
  onPlan?: (plan: DecodePlan) => void;
  /** Stops ffmpeg at once. */
  signal?: AbortSignal;
}

/**
 * Decodes frames to RGB: by timestamps, at a frame rate, or every frame. Only the selected frames are
 * converted and piped (rawvideo rgb24). Throws MediaError for files that cannot be read or decoded, and
 * for timestamps outside the video.
 */
export async function* decodeFrames(file: string, options: DecodeOptions = {}): AsyncGenerator<Frame> {
  checkDecodeOptions(options);
  const probed = options.probed ?? (await probeVideo(file));
  const { info } = probed;
  let timestamps: readonly number[] | undefined;
  if (options.fps !== undefined) timestamps = planSamples(info, { fps: options.fps }, options.maxFrames).used;
  else if (typeof options.timestamps === 'function') timestamps = options.timestamps(info);
  else timestamps = options.timestamps;

  if (timestamps === undefined && probed.reader === 'sharp') {
    const size = options.size ?? keptSize(probed.info.width, probed.info.height, options.fit);
    yield* decodeWebp(probed, size ? { size } : {}, options.signal);
    return;
  }
  const bins = await binaries();
  if (timestamps === undefined) {
    yield* everyFrame(file, probed, bins, options);
    return;
  }
  checkTimestamps(info, timestamps, file);
  const frameS = 1 / info.fps;
  // Frame times around each request, for the frame on screen and the seek plan (a small file has them all).
  await listFrames(
    probed,
    timestamps.map((t) => t + frameS / 2),
  );
  const plan = planDecode(info, timestamps, {
    frameList: probed.frameList,
    ...(options.fit ? { fit: options.fit } : {}),
    ...(options.size ? { size: options.size } : {}),
    ...(options.strategy ? { strategy: options.strategy } : {}),
    seekable: probed.seekable,
    ...(probed.seekGrainS ? { seekGrainS: probed.seekGrainS } : {}),
    name: file,
  });
  options.onPlan?.(plan);
  if (plan.requests.length === 0) return;
  if (probed.reader === 'sharp') {
    yield* decodeWebp(probed, plan, options.signal);
    return;
  }

  let next = 0; // the first request without a frame yet
  let lastT: number | undefined;
  const problems: string[] = [];
  for (const run of plan.runs) {
    const segments = run.map((i) => plan.segments[i]).filter((s): s is DecodeSegment => s !== undefined);
    const job = startRun(file, probed, bins, segments, plan.size, options.signal);
    try {
      for await (const decoded of job.frames) {
        lastT = decoded.t;
        // A segment that came out short (a damaged file) leaves requests its frames cannot serve.
        const waiting = plan.requests[next];
        const segmentStart = segments[decoded.segment]?.thresholds[0];
        if (waiting && segmentStart !== undefined && waiting.threshold < segmentStart - 1e-9) {
          throw missingFrame(waiting.t, ffmpegReason(job.problems, file));
        }
        // Requests close together can share a frame; each gets its own copy.
        for (let first = true; ; first = false) {
          const request = plan.requests[next];
          if (!request || request.threshold > decoded.t + 1e-6) break;
          yield {
            index: next,
            timestampS: Math.round(decoded.t * 1e6) / 1e6,
            width: decoded.width,
            height: decoded.height,
            rgb: first ? decoded.rgb : decoded.rgb.slice(),
          };
          next++;
        }
        if (next === plan.requests.length) return;
      }
      const err = await job.exit;
      problems.push(...job.problems);
      if (err) {
        const where = lastT === undefined ? '' : ` after ${lastT.toFixed(3)} s`;
        const reason = ffmpegReason(problems, file);
        throw new MediaError(`ffmpeg cannot decode ${file}${where}: ${reason || err.message}`, CORRUPT_HINT);
      }
    } finally {
      job.stop();
    }
  }
  const reason = ffmpegReason(problems, file);
  const missing = plan.requests[next];
  if (lastT === undefined)
    throw new MediaError(`no frame of ${file} could be decoded${reason ? `: ${reason}` : ''}`, CORRUPT_HINT);
  if (missing) throw missingFrame(missing.t, reason);

  function missingFrame(t: number, why: string): MediaError {
    const end = info.startS + info.durationS;
    return new MediaError(
      `no frame of ${file} at ${t.toFixed(3)} s, although it claims to run ${end.toFixed(3)} s${why ? ` (ffmpeg: ${why})` : ''}`,
      CORRUPT_HINT,
    );
  }
}

/** Every frame of the file, in order, with its own timestamp. */
async function* everyFrame(
  file: string,
  probed: ProbedVideo,
  bins: Binaries,
  options: DecodeOptions,
): AsyncGenerator<Frame> {
  const { info } = probed;
  const size = options.size ?? keptSize(info.width, info.height, options.fit);
  const job = startRun(file, probed, bins, [{ seekS: 0, thresholds: [], decodedFrames: 0 }], size, options.signal);
  let decoded = 0;
  let lastT: number | undefined;
  try {
    for await (const { t, width, height, rgb } of job.frames) {
      lastT = t;
      yield { index: decoded++, timestampS: Math.round(t * 1e6) / 1e6, width, height, rgb };
    }
    const err = await job.exit;
    const reason = ffmpegReason(job.problems, file);
    if (err) {
      const where = lastT === undefined ? '' : ` after ${lastT.toFixed(3)} s`;
      throw new MediaError(`ffmpeg cannot decode ${file}${where}: ${reason || err.message}`, CORRUPT_HINT);
    }
    if (lastT === undefined)
      throw new MediaError(`no frame of ${file} could be decoded${reason ? `: ${reason}` : ''}`, CORRUPT_HINT);
    const end = info.startS + info.durationS;
    if (reason && lastT < end - Math.max(1, 2 / info.fps)) {
      throw new MediaError(
        `${file} is damaged: decoding stopped at ${lastT.toFixed(3)} s of ${end.toFixed(3)} s (ffmpeg: ${reason})`,
        CORRUPT_HINT,
      );
    }
  } finally {
    job.stop();
  }
}

interface DecodedFrame {
  /** Seconds on the file's timeline. */
  t: number;
  /** Which of the run's segments it comes from. */
  segment: number;
  width: number;
  height: number;
  rgb: Uint8Array;
}

/**
 * One ffmpeg process decoding `segments`, each an input of its own (seeked, cut after its last frame),
 * their selected frames concatenated in order. Yields the frames with their times on the file's timeline.
 */
function startRun(
  file: string,
  probed: ProbedVideo,
  bins: Binaries,
  segments: readonly DecodeSegment[],
  size: { width: number; height: number } | undefined,
  signal: AbortSignal | undefined,
) {
  const concat = segments.length > 1;
  const inputs: FfmpegInput[] = segments.map((s, j) => ({
    source: file,
    options: [
      ...(j === 0 ? ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'level+info'] : []),
      ...(s.seekS > 0 ? ['-ss', s.seekS.toFixed(6)] : []),
      ...(s.endS !== undefined ? ['-t', (s.endS - s.seekS).toFixed(6)] : []),
    ],
  }));
  // Scaling and the conversion to RGB come once, after the concat (each input keeps its decoded format, or
  // the graph would convert in every branch): a scaler at 1080p costs 0.1–0.3 s per input to set up.
  const convert = [size && `scale=${size.width}:${size.height}:flags=bicubic`, 'format=rgb24'].filter(
    (f): f is string => !!f,
  );
  const branches = segments.map((s, j) => {
    const keep = concat && probed.pixelFormat ? `format=${probed.pixelFormat}` : undefined;
    const filters = [selectFilter(s), keep, `showinfo@s${j}`].filter((f): f is string => !!f);
    return `[${j}:${probed.streamIndex}]${filters.join(',')}`;
  });
  // After a concat the branch's showinfo tells the time, the one after it the order (its checksum says which).
  const graph = concat
    ? `${branches.map((b, j) => `${b}[v${j}]`).join(';')};${segments.map((_, j) => `[v${j}]`).join('')}` +
      `concat=n=${segments.length}:v=1:a=0,showinfo@out,${convert.join(',')}[out]`
    : `${branches[0]},${convert.join(',')}[out]`;
  const watch = new RunWatch();
  const run = runFfmpeg(bins.ffmpeg.path, {
    inputs,
    outputOptions: ['-filter_complex', graph, '-map', '[out]', bins.syncFlag, 'passthrough', '-f', 'rawvideo'],
    onStderr: (line) => watch.line(line),
  });
  const exit = run.exit.then((err) => {
    watch.finish();
    return err;
  });
  const stop = () => run.kill();
  signal?.addEventListener('abort', stop, { once: true });

  async function* frames(): AsyncGenerator<DecodedFrame> {
    let segment = 0;
    let ordinal = 0; // within the segment
    let decoded = 0;
    let buf: Uint8Array | undefined;
    let filled = 0;
    let shown: { t: number; segment: number; width: number; height: number } | undefined;
    for await (const chunk of run.stdout) {
      let off = 0;
      while (off < chunk.length) {
        signal?.throwIfAborted();
        if (!shown) {
          if (concat) {
            const out = await watch.shown('out', decoded);
            if (!out) throw new MediaError(`ffmpeg sent pixels for an unannounced frame while decoding ${file}`);
            // Which segment's frame this is: the next one planned, or the first of a later segment when a
            // segment came out short (a damaged file); the checksum says.
            let source = watch.get(`s${segment}`, ordinal);
            while (source?.checksum !== out.checksum && segment + 1 < segments.length) {
              const later = watch.get(`s${segment + 1}`, 0);
              if (later?.checksum !== out.checksum) break;
              segment++;
              ordinal = 0;
              source = later;
            }
            if (!source || source.checksum !== out.checksum) {
              throw new MediaError(`ffmpeg's frames came out of order while decoding ${file}`, CORRUPT_HINT);
            }
            shown = {
              t: source.t + (segments[segment]?.seekS ?? 0),
              segment,
              ...(size ?? { width: out.width, height: out.height }),
            };
            ordinal++;
            if (ordinal === segments[segment]?.thresholds.length && segment + 1 < segments.length) {
              segment++;
              ordinal = 0;
            }
          } else {
            const own = await watch.shown('s0', decoded);
            if (!own) throw new MediaError(`ffmpeg sent pixels for an unannounced frame while decoding ${file}`);
            shown = {
              t: own.t + (segments[0]?.seekS ?? 0),
              segment: 0,
              ...(size ?? { width: own.width, height: own.height }),
            };
          }
        }
        buf ??= new Uint8Array(shown.width * shown.height * 3);
        const n = Math.min(buf.length - filled, chunk.length - off);
        buf.set(chunk.subarray(off, off + n), filled);
        filled += n;
        off += n;
        if (filled < buf.length) continue;
        const frame = { ...shown, rgb: buf };
        buf = undefined;
        shown = undefined;
        filled = 0;
        decoded++;
        yield frame;
      }
    }
    if (signal?.aborted) throw signal.reason;
    if (filled > 0) {
      await exit;
      const reason = ffmpegReason(watch.problems, file);
      throw new MediaError(
        `ffmpeg stopped in the middle of a frame of ${file}${reason ? `: ${reason}` : ''}`,
        CORRUPT_HINT,
      );
    }
  }

  return {
    frames: frames(),
    exit,
    problems: watch.problems,
    stop(): void {
      signal?.removeEventListener('abort', stop);
      run.kill();
    },
  };
}

/** Keeps the first frame at or after each threshold (in the segment's time: the file's less its seek). */
function selectFilter(segment: DecodeSegment): string | undefined {
  if (segment.thresholds.length === 0) return undefined;
  const terms = segment.thresholds.map((s) => {
    const x = s - segment.seekS;
    return `gte(t,${x})*not(gte(prev_t,${x}))`;
  });
  return `select='gt(${terms.join('+')},0)'`;
}

interface ShownFrame {
  /** Seconds in the filter's time (the file's, less the input's seek). */
  t: number;
  width: number;
  height: number;
  checksum: string;
}

/**
 * Follows a run: each showinfo filter (showinfo@s<segment>, showinfo@out after a concat) prints a frame's
 * size, timestamp and checksum on stderr before its bytes go to stdout; error lines are kept for messages.
 */
class RunWatch {
  readonly problems: string[] = [];
  private readonly frames = new Map<string, ShownFrame[]>();
  private readonly readers = new Map<string, ShowinfoReader>();
  private finished = false;
  private wake: (() => void) | undefined;

  line(line: string): void {
    const name = /^\[showinfo@(\w+) @ /.exec(line)?.[1];
    if (name) {
      let reader = this.readers.get(name);
      if (!reader) {
        reader = new ShowinfoReader();
        this.readers.set(name, reader);
      }
      const frame = reader.read(line);
      if (frame) {
        const list = this.frames.get(name) ?? [];
        list.push({ t: frame.t, width: frame.width, height: frame.height, checksum: frame.checksum });
        this.frames.set(name, list);
        this.wake?.();
      }
    } else if (isErrorLine(line)) {
      this.problems.push(line);
    }
  }

  finish(): void {
    this.finished = true;
    this.wake?.();
  }

  get(name: string, k: number): ShownFrame | undefined {
    return this.frames.get(name)?.[k];
  }

  /** Frame k of a showinfo filter, or undefined if ffmpeg ended first. */
  async shown(name: string, k: number): Promise<ShownFrame | undefined> {
    while ((this.frames.get(name)?.length ?? 0) <= k && !this.finished) await new Promise<void>((r) => (this.wake = r));
    return this.get(name, k);
  }
}

function checkDecodeOptions(o: DecodeOptions): void {
  if (o.timestamps !== undefined && o.fps !== undefined) {
    throw new UsageError('sample by timestamps or at a frame rate, not both');
  }
  if (o.fps !== undefined && !(Number.isFinite(o.fps) && o.fps > 0)) {
    throw new UsageError(`sampling rate must be a positive number of frames per second, got ${o.fps}`);
  }
  if (
    o.size &&
    !(Number.isInteger(o.size.width) && Number.isInteger(o.size.height) && o.size.width > 0 && o.size.height > 0)
  ) {
    throw new UsageError(`frame size must be positive whole pixels, got ${o.size.width}×${o.size.height}`);
  }
}

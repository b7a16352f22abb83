/** Decodes sampled frames of a video file to RGB in one ffmpeg pass. */
import { MediaError, UsageError } from '../errors.js';
import { binaries } from './ffmpeg-binaries.js';
import { CORRUPT_HINT, ffmpegReason, isErrorLine } from './ffmpeg-messages.js';
import { runFfmpeg } from './ffmpeg-process.js';
import type { Frame } from './frame.js';
import { type ProbedVideo, probeVideo, type VideoInfo } from './probe.js';

export interface DecodeOptions {
  /**
   * Seconds on the file's timeline: one frame for each, the one shown nearest to it. Frames come
   * in time order. A function receives the probed video (to sample over its duration).
   */
  timestamps?: readonly number[] | ((video: VideoInfo) => readonly number[]);
  /** Frames at this rate: the first frame at or after each multiple of 1/fps, less half a frame. */
  fps?: number;
  /** Scale every frame to this size (bicubic) inside ffmpeg. */
  size?: { width: number; height: number };
  /** Stops ffmpeg at once. */
  signal?: AbortSignal;
}

/** Timestamps past this many make the select expression too long for one command line. */
const MAX_TIMESTAMPS = 1000;

interface Selection {
  /** ffmpeg select filter, or none for every frame. */
  filter?: string;
  /** Input seek in microseconds (0: none); the filters see time minus this. */
  seekUs: number;
  /** Timestamps mode: the requested timestamps, ascending, and where each one's search starts in filter time. */
  requested?: number[];
  starts?: number[];
}

/**
 * Decodes frames to RGB in one ffmpeg pass: by timestamps, at a frame rate, or every frame.
 * Only the selected frames are converted and piped (rawvideo rgb24). Throws MediaError for files
 * that cannot be read or decoded, and for timestamps outside the video.
 */
export async function* decodeFrames(file: string, options: DecodeOptions = {}): AsyncGenerator<Frame> {
  checkDecodeOptions(options);
  const probed = await probeVideo(file);
  const sel = selection(file, probed, options);
  if (sel.starts?.length === 0) return;
  const { ffmpeg, syncFlag } = await binaries();

  const filters = [
    sel.filter,
    options.size && `scale=${options.size.width}:${options.size.height}:flags=bicubic`,
    'format=rgb24',
    'showinfo',
  ];
  const watch = new DecodeWatch();
  const run = runFfmpeg(ffmpeg.path, {
    inputs: [
      {
        source: file,
        options: [
          '-hide_banner',
          '-nostdin',
          '-nostats',
          '-loglevel',
          'level+info',
          ...(sel.seekUs > 0 ? ['-ss', (sel.seekUs / 1e6).toFixed(6)] : []),
        ],
      },
    ],
    outputOptions: [
      '-map',
      `0:${probed.streamIndex}`,
      syncFlag,
      'passthrough',
      '-filter:v',
      filters.filter((f): f is string => !!f).join(','),
      '-f',
      'rawvideo',
    ],
    onStderr: (line) => watch.line(line),
  });
  const exit = run.exit.then((err) => {
    watch.finish();
    return err;
  });
  const stop = () => run.kill();
  options.signal?.addEventListener('abort', stop, { once: true });

  const offsetS = sel.seekUs / 1e6;
  const starts = sel.starts;
  let next = 0; // timestamps mode: the first request without a frame yet
  let decoded = 0;
  let lastT: number | undefined;
  let buf: Uint8Array | undefined;
  let filled = 0;
  try {
    for await (const chunk of run.stdout) {
      let off = 0;
      while (off < chunk.length) {
        options.signal?.throwIfAborted();
        const info = await watch.shown(decoded);
        if (!info) throw new MediaError(`ffmpeg sent pixels for an unannounced frame while decoding ${file}`);
        buf ??= new Uint8Array(info.width * info.height * 3);
        const n = Math.min(buf.length - filled, chunk.length - off);
        buf.set(chunk.subarray(off, off + n), filled);
        filled += n;
        off += n;
        if (filled < buf.length) continue;

        const rgb = buf;
        buf = undefined;
        filled = 0;
        decoded++;
        lastT = info.t + offsetS;
        const timestampS = Math.round(lastT * 1e6) / 1e6;
        const frame = (index: number, pixels: Uint8Array): Frame => ({
          index,
          timestampS,
          width: info.width,
          height: info.height,
          rgb: pixels,
        });
        if (!starts) {
          yield frame(decoded - 1, rgb);
          continue;
        }
        // Requests close together can share a frame; each gets its own copy.
        for (let first = true; next < starts.length && (starts[next] ?? 0) <= info.t + 1e-9; first = false) {
          yield frame(next, first ? rgb : rgb.slice());
          next++;
        }
        if (next === starts.length) return;
      }
    }
    if (options.signal?.aborted) throw options.signal.reason;
    const err = await exit;
    const reason = ffmpegReason(watch.problems, file);
    if (err) {
      const where = lastT === undefined ? '' : ` after ${lastT.toFixed(3)} s`;
      throw new MediaError(`ffmpeg cannot decode ${file}${where}: ${reason || err.message}`, CORRUPT_HINT);
    }
    if (filled > 0)
      throw new MediaError(
        `ffmpeg stopped in the middle of a frame of ${file}${reason ? `: ${reason}` : ''}`,
        CORRUPT_HINT,
      );
    if (decoded === 0)
      throw new MediaError(`no frame of ${file} could be decoded${reason ? `: ${reason}` : ''}`, CORRUPT_HINT);
    const end = probed.info.startS + probed.info.durationS;
    const missing = sel.requested?.[next];
    if (missing !== undefined) {
      throw new MediaError(
        `no frame of ${file} at ${missing.toFixed(3)} s, although it claims to run ${end.toFixed(3)} s${reason ? ` (ffmpeg: ${reason})` : ''}`,
        CORRUPT_HINT,
      );
    }
    if (reason && lastT !== undefined && lastT < end - Math.max(1, 2 / probed.info.fps)) {
      throw new MediaError(
        `${file} is damaged: decoding stopped at ${lastT.toFixed(3)} s of ${end.toFixed(3)} s (ffmpeg: ${reason})`,
        CORRUPT_HINT,
      );
    }
  } finally {
    options.signal?.removeEventListener('abort', stop);
    run.kill();
  }
}

interface ShownFrame {
  /** Seconds in the filters' time (the file's, less any input seek). */
  t: number;
  width: number;
  height: number;
}

/**
 * Follows a decode: the showinfo filter prints each output frame's size and timestamp on stderr
 * before its bytes go to stdout; error lines are kept for messages.
 */
class DecodeWatch {
  readonly problems: string[] = [];
  private readonly shownFrames: ShownFrame[] = [];
  private timeBase: number | undefined;
  private finished = false;
  private wake: (() => void) | undefined;

  line(line: string): void {
    if (line.includes('Parsed_showinfo_')) {
      const tb = /config in time_base:\s*(\d+)\/(\d+)/.exec(line);
      if (tb && Number(tb[2]) > 0) this.timeBase = Number(tb[1]) / Number(tb[2]);
      const m = /\bpts:\s*(-?\d+|NOPTS)\s+pts_time:(\S+).*?\bs:(\d+)x(\d+)/.exec(line);
      if (m) {
        // Same arithmetic as the select filter's t, so comparisons with its thresholds agree.
        const t = m[1] !== 'NOPTS' && this.timeBase !== undefined ? Number(m[1]) * this.timeBase : Number(m[2]);
        this.shownFrames.push({ t, width: Number(m[3]), height: Number(m[4]) });
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

  /** Frame k's description, or undefined if ffmpeg ended first. */
  async shown(k: number): Promise<ShownFrame | undefined> {
    while (this.shownFrames.length <= k && !this.finished) await new Promise<void>((r) => (this.wake = r));
    return this.shownFrames[k];
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

function selection(file: string, probed: ProbedVideo, o: DecodeOptions): Selection {
  const { info } = probed;
  const frameS = 1 / info.fps;
  if (o.fps !== undefined) {
    // Grid point k/fps takes the first frame at or after k/fps − frameS/2: the frame nearest to it.
    const c = frameS / 2 - info.startS;
    const cell = (v: string) => `floor((${v}+${c})*${o.fps})`;
    return { filter: `select='isnan(prev_t)+gt(${cell('t')},${cell('prev_t')})'`, seekUs: 0 };
  }
  if (o.timestamps === undefined) return { seekUs: 0 };

  const requested = typeof o.timestamps === 'function' ? o.timestamps(info) : o.timestamps;
  if (requested.length > MAX_TIMESTAMPS) {
    throw new UsageError(
      `${requested.length} timestamps requested; at most ${MAX_TIMESTAMPS} per decode`,
      'sample at a frame rate instead',
    );
  }
  const end = info.startS + info.durationS;
  for (const t of requested) {
    if (!Number.isFinite(t) || t < 0 || t > end + 1e-6) {
      throw new MediaError(
        `timestamp ${t} s is outside ${file}, which runs from 0 to ${end.toFixed(3)} s`,
        'ask for frames within the video',
      );
    }
  }
  // The first frame at or after t − frameS/2 is the nearest to t; never past the last frame.
  const sorted = [...requested].sort((a, b) => a - b);
  const starts = sorted.map((t) => Math.min(t - frameS / 2, end - 1.5 * frameS));
  let seekUs = 0;
  const first = starts[0];
  if (first !== undefined && probed.seekable && probed.timeBase && first - frameS > 1) {
    // On a whole tick of the stream's time base, so that ffmpeg shifts timestamps by exactly this much.
    const ticks = Math.floor((first - frameS) / probed.timeBase);
    seekUs = Math.round(ticks * probed.timeBase * 1e6);
  }
  const shifted = starts.map((s) => s - seekUs / 1e6);
  const terms = [...new Set(shifted)].map((s) => `gte(t,${s})*not(gte(prev_t,${s}))`);
  return { filter: `select='gt(${terms.join('+')},0)'`, seekUs, requested: sorted, starts: shifted };
}

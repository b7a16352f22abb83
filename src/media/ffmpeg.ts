/**
 * The one module that runs ffmpeg and ffprobe (through fluent-ffmpeg): it finds the binaries,
 * probes videos, decodes sampled frames to RGB in a single ffmpeg pass and encodes RGB frames to MP4.
 */
import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, open, stat, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { FfprobeData } from 'fluent-ffmpeg';
import ffmpeg from 'fluent-ffmpeg';
import { MediaError, UsageError } from '../errors.js';
import type { Frame, RgbImage } from './frame.js';

// ---------------------------------------------------------------------------------------------
// Binaries

export type BinarySource = 'option' | 'env' | 'path' | 'bundled';

export interface ResolvedBinary {
  path: string;
  /** An explicit option, FFMPEG_PATH / FFPROBE_PATH, the PATH, or the static build shipped on npm. */
  source: BinarySource;
  /** As the binary prints it, e.g. "5.1.6-0+deb12u1" or "N-47683-g0e8eb07980-static". */
  version: string;
}

export interface FfmpegBinaries {
  ffmpeg: ResolvedBinary;
  ffprobe: ResolvedBinary;
}

/** Explicit binaries, e.g. from the config file. The value "bundled" picks the npm-shipped build. */
export interface FfmpegOptions {
  ffmpegPath?: string;
  ffprobePath?: string;
}

interface Tool {
  name: 'ffmpeg' | 'ffprobe';
  env: 'FFMPEG_PATH' | 'FFPROBE_PATH';
  bundle: string;
}

const FFMPEG: Tool = { name: 'ffmpeg', env: 'FFMPEG_PATH', bundle: '@ffmpeg-installer/ffmpeg' };
const FFPROBE: Tool = { name: 'ffprobe', env: 'FFPROBE_PATH', bundle: '@ffprobe-installer/ffprobe' };

interface Resolved extends FfmpegBinaries {
  /** ffmpeg 7 (libavformat 61) deprecates -vsync; -fps_mode only exists from 5.1 on. */
  syncFlag: '-vsync' | '-fps_mode';
}

const execFileAsync = promisify(execFile);
const requireCjs = createRequire(import.meta.url);

let configured: FfmpegOptions = {};
let resolving: Promise<Resolved> | undefined;

/** Sets explicit binaries; later calls find them again. */
export function configureFfmpeg(options: FfmpegOptions = {}): void {
  configured = { ...options };
  resolving = undefined;
}

/**
 * The binaries every call uses, in this order of precedence: explicit option → FFMPEG_PATH /
 * FFPROBE_PATH → `ffmpeg` / `ffprobe` on the PATH → the builds bundled by @ffmpeg-installer and
 * @ffprobe-installer.
 */
export async function ffmpegBinaries(): Promise<FfmpegBinaries> {
  const { ffmpeg: ff, ffprobe: fp } = await binaries();
  return { ffmpeg: ff, ffprobe: fp };
}

function binaries(): Promise<Resolved> {
  if (!resolving) {
    const attempt = resolveAll(configured);
    resolving = attempt;
    attempt.catch(() => {
      if (resolving === attempt) resolving = undefined; // look again next time
    });
  }
  return resolving;
}

async function resolveAll(options: FfmpegOptions): Promise<Resolved> {
  const [ff, fp] = await Promise.all([
    resolveBinary(FFMPEG, options.ffmpegPath),
    resolveBinary(FFPROBE, options.ffprobePath),
  ]);
  const lavf = Number(/libavformat\s+(\d+)\./.exec(ff.banner)?.[1] ?? 0);
  return { ffmpeg: ff.binary, ffprobe: fp.binary, syncFlag: lavf >= 61 ? '-fps_mode' : '-vsync' };
}

async function resolveBinary(tool: Tool, explicit: string | undefined) {
  if (explicit === 'bundled') return runVersion(tool, bundledPath(tool), 'bundled');
  if (explicit) return runVersion(tool, explicit, 'option');
  const fromEnv = process.env[tool.env];
  if (fromEnv) return runVersion(tool, fromEnv, 'env');
  const onPath = await findOnPath(tool.name);
  if (onPath) {
    try {
      return await runVersion(tool, onPath, 'path');
    } catch {
      // A broken binary on the PATH: the bundled one follows.
    }
  }
  return runVersion(tool, bundledPath(tool), 'bundled');
}

async function runVersion(tool: Tool, file: string, source: BinarySource) {
  let banner: string;
  try {
    banner = (await execFileAsync(file, ['-version'], { timeout: 15_000 })).stdout;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    if (source === 'bundled') {
      throw new MediaError(
        `the bundled ${tool.name} (${file}) does not run: ${why}`,
        `install ffmpeg (it brings ffprobe), or set ${tool.env}; if the file is not executable, chmod +x it`,
      );
    }
    const from = source === 'env' ? tool.env : source === 'option' ? `the ${tool.name} path option` : 'the PATH';
    throw new UsageError(
      `${tool.name} ${file} (from ${from}) does not run: ${why}`,
      `point ${from} at a working ${tool.name}, or use "bundled" for the build shipped with vlm-sieve`,
    );
  }
  const version = /version\s+(\S+)/.exec(banner)?.[1] ?? 'unknown';
  return { binary: { path: file, source, version } satisfies ResolvedBinary, banner };
}

async function findOnPath(name: string): Promise<string | undefined> {
  const exe = process.platform === 'win32' ? `${name}.exe` : name;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, exe);
    try {
      await access(file, fsConstants.X_OK);
      if ((await stat(file)).isFile()) return file;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function bundledPath(tool: Tool): string {
  try {
    return (requireCjs(tool.bundle) as { path: string }).path;
  } catch (err) {
    // @ffmpeg-installer throws a plain string for unsupported platforms.
    const why = err instanceof Error ? err.message : String(err);
    throw new MediaError(
      `no ${tool.name} found: ${tool.env} is not set, there is none on the PATH, and the bundled build is unavailable (${why})`,
      `install ffmpeg (it brings ffprobe), or set ${tool.env}`,
    );
  }
}

/** fluent-ffmpeg keeps the binary paths in module-wide state: set them before every command. */
async function useBinaries(): Promise<Resolved> {
  const b = await binaries();
  ffmpeg.setFfmpegPath(b.ffmpeg.path);
  ffmpeg.setFfprobePath(b.ffprobe.path);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Probing

export interface VideoInfo {
  /** Length of the video stream, seconds. */
  durationS: number;
  /** Where the video stream starts on the file's timeline (usually 0); timestamps count from the file's start. */
  startS: number;
  /** Size of the decoded frames (rotation metadata applied). */
  width: number;
  height: number;
  /** Average frame rate. */
  fps: number;
  /** From the container's index, when it has one (MP4 does, Matroska does not). */
  frameCount?: number;
  codec: string;
}

interface Probed {
  info: VideoInfo;
  streamIndex: number;
  /** Seconds per tick of the stream's timestamps. */
  timeBase?: number;
  /** Containers whose index makes accurate seeking reliable. */
  seekable: boolean;
}

const CORRUPT_HINT = 'the file is corrupt, truncated or not a video: check that a player opens it, or re-encode it';

export async function probe(file: string): Promise<VideoInfo> {
  return (await inspect(file)).info;
}

async function inspect(file: string): Promise<Probed> {
  await checkReadable(file);
  const { ffprobe: prober } = await useBinaries();
  const data = await new Promise<FfprobeData>((resolve, reject) => {
    ffmpeg.ffprobe(file, ['-v', 'error'], (err: unknown, d: FfprobeData) => (err ? reject(err) : resolve(d)));
  }).catch((err: unknown) => {
    // fluent-ffmpeg appends ffprobe's stderr after its own first line.
    const lines = (err instanceof Error ? err.message : String(err)).split('\n');
    const signal = /killed with signal (\w+)/.exec(lines[0]!)?.[1];
    if (signal) {
      throw new MediaError(
        `ffprobe (${prober.path}) crashed with ${signal} reading ${file}`,
        prober.source === 'bundled'
          ? 'the bundled static ffprobe crashes on some inputs (MPEG-TS among them) with newer system libraries: install ffmpeg (it brings ffprobe) or set FFPROBE_PATH, or remux to MP4 (ffmpeg -i in.ts -c copy out.mp4)'
          : CORRUPT_HINT,
      );
    }
    throw new MediaError(`cannot read video ${file}: ${ffmpegReason(lines.slice(1), file) || lines[0]}`, CORRUPT_HINT);
  });
  return describeVideo(file, data);
}

async function checkReadable(file: string): Promise<void> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      throw new MediaError(
        `video file not found: ${file}`,
        'check the path (a relative path starts at the current directory)',
      );
    }
    throw new MediaError(`cannot read video ${file}: ${err.message}`);
  });
  if (st.isDirectory())
    throw new MediaError(`${file} is a directory, not a video file`, 'give the path of a video file');
  if (st.size === 0) {
    throw new MediaError(
      `video file ${file} is empty (0 bytes)`,
      'whatever wrote it (a recording, a download) failed: make it again',
    );
  }
  try {
    await (await open(file, 'r')).close();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MediaError(
      `cannot read video ${file}: ${code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message}`,
      'check the file permissions',
    );
  }
}

function describeVideo(file: string, data: FfprobeData): Probed {
  if (data.streams.length === 0)
    throw new MediaError(`cannot read video ${file}: ffprobe finds no streams in it`, CORRUPT_HINT);
  const video = data.streams.find((s) => s.codec_type === 'video' && !Number(s.disposition?.attached_pic));
  if (!video) {
    const found = data.streams.map((s) => `${s.codec_type ?? 'unknown'} (${s.codec_name ?? 'unknown'})`).join(', ');
    throw new MediaError(
      `${file} has no video stream (it contains ${found})`,
      'give a video file (still images go in as images); if this one should have video, it is damaged or truncated',
    );
  }
  if (finite(video.start_time) === undefined && rate(video.avg_frame_rate) === undefined) {
    // The header names a video stream but no packet of it was found (a file cut inside its index).
    throw new MediaError(`cannot read video ${file}: ffprobe finds no frames in its video stream`, CORRUPT_HINT);
  }
  const formatStart = finite(data.format.start_time) ?? 0;
  const startS = Math.max(0, (finite(video.start_time) ?? formatStart) - formatStart);
  const fps = rate(video.avg_frame_rate) ?? rate(video.r_frame_rate);
  const formatDuration = finite(data.format.duration);
  const durationS =
    positive(video.duration) ?? (formatDuration !== undefined ? positive(formatDuration - startS) : undefined);
  const width = positive(video.width);
  const height = positive(video.height);
  if (fps === undefined || durationS === undefined || width === undefined || height === undefined) {
    const missing = [
      fps === undefined && 'frame rate',
      durationS === undefined && 'duration',
      width === undefined && 'size',
    ]
      .filter(Boolean)
      .join(', ');
    throw new MediaError(
      `${file}: ffprobe finds no ${missing} for the video stream`,
      'remux it into MP4 (ffmpeg -i in -c copy out.mp4) or re-encode it',
    );
  }
  const rotation = finite(video.rotation) ?? finite(video.tags?.rotate) ?? 0;
  const turned = Math.abs(rotation) % 180 === 90;
  const frameCount = positive(video.nb_frames);
  const tb = /^(\d+)\/(\d+)$/.exec(String(video.time_base ?? ''));
  return {
    info: {
      durationS,
      startS,
      width: turned ? height : width,
      height: turned ? width : height,
      fps,
      ...(frameCount !== undefined ? { frameCount } : {}),
      codec: video.codec_name ?? 'unknown',
    },
    streamIndex: video.index,
    ...(tb && Number(tb[2]) > 0 ? { timeBase: Number(tb[1]) / Number(tb[2]) } : {}),
    seekable: /mov|mp4|matroska|webm/.test(String(data.format.format_name ?? '')),
  };
}

function finite(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

function positive(v: unknown): number | undefined {
  const n = finite(v);
  return n !== undefined && n > 0 ? n : undefined;
}

function rate(v: unknown): number | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(String(v ?? ''));
  return m && Number(m[2]) > 0 ? positive(Number(m[1]) / Number(m[2])) : undefined;
}

/** ffmpeg's own words for what went wrong: its error lines without the log prefixes, deduplicated. */
function ffmpegReason(lines: readonly string[], file: string): string {
  const seen = new Set<string>();
  for (const line of lines) {
    const text = line
      .replace(/^\[[^\]]* @ 0x[0-9a-f]+\]\s*/i, '')
      .replace(/^\[(?:error|fatal|panic|warning)\]\s*/, '')
      .replace(`${file}: `, '')
      .trim()
      .replace(/\.$/, '');
    if (text) seen.add(text);
    if (seen.size === 3) break;
  }
  const reason = [...seen].join('; ');
  return reason.length > 300 ? `${reason.slice(0, 297)}...` : reason;
}

// ---------------------------------------------------------------------------------------------
// Decoding

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
  const probed = await inspect(file);
  const sel = selection(file, probed, options);
  if (sel.starts?.length === 0) return;
  const { syncFlag } = await useBinaries();

  const filters = [
    sel.filter,
    options.size && `scale=${options.size.width}:${options.size.height}:flags=bicubic`,
    'format=rgb24',
    'showinfo',
  ];
  const command = ffmpeg(file)
    .inputOptions([
      '-hide_banner',
      '-nostdin',
      '-nostats',
      '-loglevel',
      'level+info',
      ...(sel.seekUs > 0 ? ['-ss', (sel.seekUs / 1e6).toFixed(6)] : []),
    ])
    .outputOptions(['-map', `0:${probed.streamIndex}`, syncFlag, 'passthrough'])
    .videoFilters(filters.filter((f): f is string => !!f).join(','))
    .format('rawvideo');

  const run = watchDecode(command);
  options.signal?.addEventListener('abort', run.stop, { once: true });

  const offsetS = sel.seekUs / 1e6;
  const starts = sel.starts;
  let next = 0; // timestamps mode: the first request without a frame yet
  let decoded = 0;
  let lastT: number | undefined;
  let buf: Uint8Array | undefined;
  let filled = 0;
  try {
    for await (const chunk of command.pipe() as AsyncIterable<Buffer>) {
      let off = 0;
      while (off < chunk.length) {
        options.signal?.throwIfAborted();
        const info = await run.shown(decoded);
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
        for (let first = true; next < starts.length && starts[next]! <= info.t + 1e-9; first = false) {
          yield frame(next, first ? rgb : rgb.slice());
          next++;
        }
        if (next === starts.length) return;
      }
    }
    if (options.signal?.aborted) throw options.signal.reason;
    const err = await run.exit;
    const reason = ffmpegReason(run.problems, file);
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
    if (sel.requested && next < sel.requested.length) {
      throw new MediaError(
        `no frame of ${file} at ${sel.requested[next]!.toFixed(3)} s, although it claims to run ${end.toFixed(3)} s${reason ? ` (ffmpeg: ${reason})` : ''}`,
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
    options.signal?.removeEventListener('abort', run.stop);
    run.stop();
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
function watchDecode(command: ffmpeg.FfmpegCommand) {
  const shownFrames: ShownFrame[] = [];
  const problems: string[] = [];
  let timeBase: number | undefined;
  let finished = false;
  let cancelled = false;
  let wake: (() => void) | undefined;
  command.on('stderr', (line: string) => {
    if (line.includes('Parsed_showinfo_')) {
      const tb = /config in time_base:\s*(\d+)\/(\d+)/.exec(line);
      if (tb && Number(tb[2]) > 0) timeBase = Number(tb[1]) / Number(tb[2]);
      const m = /\bpts:\s*(-?\d+|NOPTS)\s+pts_time:(\S+).*?\bs:(\d+)x(\d+)/.exec(line);
      if (m) {
        // Same arithmetic as the select filter's t, so comparisons with its thresholds agree.
        const t = m[1] !== 'NOPTS' && timeBase !== undefined ? Number(m[1]) * timeBase : Number(m[2]);
        shownFrames.push({ t, width: Number(m[3]), height: Number(m[4]) });
        wake?.();
      }
    } else if (/\[(?:error|fatal|panic)\]/.test(line)) {
      problems.push(line);
    }
  });
  const exit = new Promise<Error | undefined>((resolve) => {
    command.on('end', () => resolve(undefined));
    // fluent-ffmpeg reports a consumed output stream as an error; the byte count decides instead.
    command.on('error', (err: Error) => resolve(err.message === 'Output stream closed' ? undefined : err));
  }).then((err) => {
    finished = true;
    wake?.();
    return err;
  });
  // A kill before the process exists is a no-op in fluent-ffmpeg: repeat it once it starts.
  command.on('start', () => {
    if (cancelled) command.kill('SIGKILL');
  });
  return {
    problems,
    exit,
    /** Frame k's description, or undefined if ffmpeg ended first. */
    async shown(k: number): Promise<ShownFrame | undefined> {
      while (shownFrames.length <= k && !finished) await new Promise<void>((r) => (wake = r));
      return shownFrames[k];
    },
    stop(): void {
      cancelled = true;
      if (!finished) command.kill('SIGKILL');
    },
  };
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

function selection(file: string, probed: Probed, o: DecodeOptions): Selection {
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

// ---------------------------------------------------------------------------------------------
// Encoding

export interface EncodeOptions {
  fps: number;
  /** The MP4 file to write (replaced if it exists). */
  out: string;
  /** ffmpeg video encoder, default libx264. */
  codec?: string;
  /**
   * yuv444p (default) keeps the colour of small objects; yuv420p halves chroma resolution (small
   * shapes lose up to ~50 levels of colour) but plays everywhere, browsers and hardware decoders included.
   */
  pixelFormat?: 'yuv444p' | 'yuv420p';
  /** Constant quality for libx264/libx265: lower is better and bigger. Default 18. */
  crf?: number;
}

/** Encodes RGB frames (all of one size) to an H.264 MP4 with the index at the front. */
export async function encodeVideo(
  frames: Iterable<RgbImage> | AsyncIterable<RgbImage>,
  options: EncodeOptions,
): Promise<{ frameCount: number }> {
  const { fps, out, codec = 'libx264', pixelFormat = 'yuv444p', crf = 18 } = options;
  if (!(Number.isFinite(fps) && fps > 0)) throw new UsageError(`frame rate must be a positive number, got ${fps}`);
  const source = (async function* () {
    yield* frames;
  })();
  const head = await source.next();
  if (head.done) throw new UsageError(`no frames to encode into ${out}`);
  const { width, height } = head.value;
  checkImage(head.value, width, height, 0);
  if (pixelFormat === 'yuv420p' && (width % 2 || height % 2)) {
    throw new UsageError(`yuv420p needs an even frame size, got ${width}×${height}`, 'use yuv444p or crop a pixel');
  }

  let frameCount = 0;
  let inputError: unknown;
  const input = Readable.from(
    (async function* () {
      try {
        for (let f: IteratorResult<RgbImage, void> = head; !f.done; f = await source.next()) {
          checkImage(f.value, width, height, frameCount);
          frameCount++;
          const { rgb } = f.value;
          yield Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
        }
      } catch (err) {
        inputError = err;
        throw err;
      }
    })(),
    { objectMode: false },
  );

  await useBinaries();
  try {
    await new Promise<void>((resolve, reject) => {
      ffmpeg()
        .input(input)
        .inputFormat('rawvideo')
        .inputOptions([
          '-hide_banner',
          '-nostats',
          '-loglevel',
          'level+warning',
          '-pixel_format',
          'rgb24',
          '-video_size',
          `${width}x${height}`,
          '-framerate',
          String(fps),
        ])
        .videoCodec(codec)
        // BT.601 limited range, written and tagged explicitly so every decoder converts back the same way.
        .videoFilters(`scale=out_color_matrix=bt601:out_range=tv,format=${pixelFormat}`)
        .outputOptions([
          '-crf',
          String(crf),
          '-colorspace',
          'smpte170m',
          '-color_primaries',
          'smpte170m',
          '-color_trc',
          'smpte170m',
          '-color_range',
          'tv',
          '-movflags',
          '+faststart',
        ])
        .noAudio()
        .format('mp4')
        .on('end', () => resolve())
        .on('error', (err: Error, _stdout: string | null, stderr: string | null) => {
          const reason = ffmpegReason(
            (stderr ?? '').split('\n').filter((l) => /\[(?:error|fatal|panic)\]/.test(l)),
            out,
          );
          reject(new Error(reason || err.message));
        })
        .save(out);
    });
  } catch (err) {
    await unlink(out).catch(() => undefined);
    if (inputError !== undefined) throw inputError;
    throw new MediaError(
      `cannot encode ${out}: ${(err as Error).message}`,
      /not available|Unknown encoder/i.test((err as Error).message)
        ? `this ffmpeg has no ${codec} encoder: use an ffmpeg built with it (the bundled one has libx264: set the ffmpeg path to "bundled")`
        : 'check that the output folder exists and is writable',
    );
  }
  return { frameCount };
}

function checkImage(image: RgbImage, width: number, height: number, index: number): void {
  if (image.width !== width || image.height !== height) {
    throw new UsageError(`frame ${index} is ${image.width}×${image.height}, but the video is ${width}×${height}`);
  }
  if (image.rgb.length !== width * height * 3) {
    throw new UsageError(
      `frame ${index} has ${image.rgb.length} bytes; ${width}×${height} RGB needs ${width * height * 3}`,
    );
  }
}

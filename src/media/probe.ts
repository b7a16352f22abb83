/**
 * What ffprobe says about a video file: its video stream's length, start, size and frame rate, and the
 * presentation time of its frames (from the container's packets, without decoding) where decoding needs them.
 */
import { open, stat } from 'node:fs/promises';
import { MediaError } from '../errors.js';
import { isWebp, probeWebp } from './animated-image.js';
import { binaries } from './ffmpeg-binaries.js';
import { CORRUPT_HINT, ffmpegReason } from './ffmpeg-messages.js';
import { runFfprobe } from './ffmpeg-process.js';
import type { FrameList, KnownFrame } from './frame-plan.js';

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

/** A probed video with what decoding it needs besides VideoInfo. */
export interface ProbedVideo {
  file: string;
  info: VideoInfo;
  streamIndex: number;
  /** Seconds per tick of the stream's timestamps. */
  timeBase?: number;
  /** The shortest step that is a whole number of ticks and of microseconds: ffmpeg shifts timestamps by a seek to such a time exactly. */
  seekGrainS?: number;
  /** Of the decoded frames (yuv420p…), when ffprobe says. */
  pixelFormat?: string;
  /** Containers whose index makes accurate seeking reliable. */
  seekable: boolean;
  /** Where the file's timeline starts in stream time (ffmpeg counts from here). */
  formatStartS: number;
  /** Frame times known so far: the whole video for small files, else none until listFrames adds some. */
  frameList: FrameList;
  /** sharp reads it (an animated WebP) instead of ffmpeg. */
  reader?: 'sharp';
}

/** Files up to this size have their packets listed by the probe itself (one ffprobe process for both). */
const LIST_WITH_PROBE_BYTES = 64 * 1024 * 1024;
/** Packets the probe lists at most (all streams): a short clip's whole video, a few seconds of a long one. */
const LIST_WITH_PROBE_PACKETS = 4000;

export async function probe(file: string): Promise<VideoInfo> {
  return (await probeVideo(file)).info;
}

/**
 * Probes a video file; MediaError says what is wrong with one that cannot be read. For a small file the
 * same ffprobe run lists its packets, so the frame times are known at no extra cost.
 */
export async function probeVideo(file: string): Promise<ProbedVideo> {
  const size = await checkReadable(file);
  if (await isWebp(file)) return probeWebp(file);
  const listing = size <= LIST_WITH_PROBE_BYTES;
  const data = await ffprobeJson(file, [
    '-show_streams',
    '-show_format',
    ...(listing
      ? [
          '-show_entries',
          'packet=stream_index,pts,dts,duration,flags',
          '-read_intervals',
          `%+#${LIST_WITH_PROBE_PACKETS}`,
        ]
      : []),
  ]);
  const probed = describeVideo(file, data);
  if (!listing) {
    checkComplete(file, probed);
    return probed;
  }
  const packets = (data.packets ?? []).filter((p) => Number(p.stream_index) === probed.streamIndex);
  const frames = knownFrames(packets, probed);
  const reachedEnd = (data.packets ?? []).length < LIST_WITH_PROBE_PACKETS;
  const count = probed.info.frameCount;
  const complete = reachedEnd && (count === undefined || frames.length >= count);
  const lastDts = Math.max(...packets.map((p) => seconds(p.dts, probed) ?? Number.NEGATIVE_INFINITY));
  probed.frameList = {
    frames,
    covered: frames.length
      ? [{ fromS: Number.NEGATIVE_INFINITY, toS: complete ? Number.POSITIVE_INFINITY : lastDts }]
      : [],
  };
  if (complete && frames.length > 0 && probed.info.durationS <= 0) {
    // No duration in the header (animated PNG): the last frame's end.
    const last = packets[packets.length - 1];
    const lastT = frames[frames.length - 1]?.t ?? 0;
    probed.info.durationS = lastT + (seconds(last?.duration, probed, true) ?? 1 / probed.info.fps) - probed.info.startS;
  }
  checkComplete(file, probed);
  return probed;
}

/**
 * Adds to a probed video's frame list the frames around each time (seconds on the file's timeline) that it
 * does not cover yet: one ffprobe run reading packets from the keyframe before each time to a little after.
 */
export async function listFrames(probed: ProbedVideo, times: readonly number[]): Promise<void> {
  const list = probed.frameList;
  const frameS = 1 / probed.info.fps;
  const spans: { fromS: number; toS: number }[] = [];
  for (const t of [...times].sort((a, b) => a - b)) {
    if (list.covered.some((c) => c.fromS <= t && t <= c.toS)) continue;
    const span = { fromS: t - 1e-3, toS: t + 1 + 4 * frameS };
    const last = spans[spans.length - 1];
    // Close spans are read in one go: each span is read from the keyframe before it.
    if (last && span.fromS - last.toS < 10) last.toS = span.toS;
    else spans.push(span);
  }
  if (spans.length === 0) return;
  const abs = (s: number) => (s + probed.formatStartS).toFixed(6);
  const data = await ffprobeJson(probed.file, [
    '-select_streams',
    String(probed.streamIndex),
    '-show_entries',
    'packet=stream_index,pts,dts,duration,flags',
    '-read_intervals',
    spans.map((s) => `${abs(s.fromS)}%${abs(s.toS)}`).join(','),
  ]);
  const byTime = new Map<number, KnownFrame>(list.frames.map((f) => [f.t, f]));
  for (const f of knownFrames(data.packets ?? [], probed)) byTime.set(f.t, f);
  list.frames = [...byTime.values()].sort((a, b) => a.t - b.t);
  // Reorder (B-frames) can hold back the last few frames of a span: trust it up to a few frames before its end.
  list.covered.push(...spans.map((s) => ({ fromS: s.fromS, toS: s.toS - 3 * frameS })));
}

interface ProbeStream {
  index: number;
  codec_type?: string;
  codec_name?: string;
  disposition?: { attached_pic?: number };
  start_time?: string;
  duration?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  width?: number;
  height?: number;
  nb_frames?: string;
  time_base?: string;
  pix_fmt?: string;
  tags?: Record<string, string>;
  side_data_list?: { rotation?: number | string }[];
}

interface ProbePacket {
  stream_index?: number | string;
  pts?: number | string;
  dts?: number | string;
  duration?: number | string;
  flags?: string;
}

interface ProbeData {
  streams?: ProbeStream[];
  format?: { start_time?: string; duration?: string; format_name?: string };
  packets?: ProbePacket[];
}

/** Runs ffprobe with JSON output on a file. */
async function ffprobeJson(file: string, args: readonly string[]): Promise<ProbeData> {
  const { ffprobe: prober } = await binaries();
  const result = await runFfprobe(prober.path, ['-v', 'error', '-of', 'json', ...args, file]);
  if (!result.ok) {
    if (result.signal) {
      throw new MediaError(
        `ffprobe (${prober.path}) crashed with ${result.signal} reading ${file}`,
        prober.source === 'bundled'
          ? 'the bundled static ffprobe crashes on some inputs (MPEG-TS among them) with newer system libraries: install ffmpeg (it brings ffprobe) or set FFPROBE_PATH, or remux to MP4 (ffmpeg -i in.ts -c copy out.mp4)'
          : CORRUPT_HINT,
      );
    }
    const reason = ffmpegReason(result.stderr.split('\n'), file) || result.message.split('\n')[0];
    throw new MediaError(`cannot read video ${file}: ${reason}`, CORRUPT_HINT);
  }
  try {
    return JSON.parse(result.stdout) as ProbeData;
  } catch {
    throw new MediaError(`cannot read video ${file}: ffprobe's output is not JSON`, CORRUPT_HINT);
  }
}

function knownFrames(packets: readonly ProbePacket[], probed: ProbedVideo): KnownFrame[] {
  const frames: KnownFrame[] = [];
  for (const p of packets) {
    const t = seconds(p.pts, probed);
    if (t !== undefined) frames.push({ t, key: String(p.flags ?? '').startsWith('K') });
  }
  return frames.sort((a, b) => a.t - b.t);
}

/** A packet timestamp in seconds on the file's timeline (a duration when `span`). */
function seconds(ticks: unknown, probed: ProbedVideo, span = false): number | undefined {
  const n = finite(ticks);
  if (n === undefined || probed.timeBase === undefined) return undefined;
  return n * probed.timeBase - (span ? 0 : probed.formatStartS);
}

/** The file's size, after checking that it can be read. */
async function checkReadable(file: string): Promise<number> {
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
  return st.size;
}

function describeVideo(file: string, data: ProbeData): ProbedVideo {
  const streams = data.streams ?? [];
  if (streams.length === 0)
    throw new MediaError(`cannot read video ${file}: ffprobe finds no streams in it`, CORRUPT_HINT);
  const video = streams.find((s) => s.codec_type === 'video' && !Number(s.disposition?.attached_pic));
  if (!video) {
    const found = streams.map((s) => `${s.codec_type ?? 'unknown'} (${s.codec_name ?? 'unknown'})`).join(', ');
    throw new MediaError(
      `${file} has no video stream (it contains ${found})`,
      'give a video file (still images go in as images); if this one should have video, it is damaged or truncated',
    );
  }
  if (finite(video.start_time) === undefined && rate(video.avg_frame_rate) === undefined) {
    // The header names a video stream but no packet of it was found (a file cut inside its index).
    throw new MediaError(`cannot read video ${file}: ffprobe finds no frames in its video stream`, CORRUPT_HINT);
  }
  const format = data.format ?? {};
  const formatStart = finite(format.start_time) ?? 0;
  const startS = Math.max(0, (finite(video.start_time) ?? formatStart) - formatStart);
  const fps = rate(video.avg_frame_rate) ?? rate(video.r_frame_rate);
  const formatDuration = finite(format.duration);
  const durationS =
    positive(video.duration) ?? (formatDuration !== undefined ? positive(formatDuration - startS) : undefined);
  const width = positive(video.width);
  const height = positive(video.height);
  if (fps === undefined || width === undefined || height === undefined) {
    throw new MediaError(
      `${file}: ffprobe finds no ${missingFields({ fps, durationS, width })} for the video stream`,
      'remux it into MP4 (ffmpeg -i in -c copy out.mp4) or re-encode it',
    );
  }
  const rotation =
    finite(video.side_data_list?.find((d) => d.rotation !== undefined)?.rotation) ?? finite(video.tags?.rotate) ?? 0;
  const turned = Math.abs(rotation) % 180 === 90;
  const frameCount = positive(video.nb_frames);
  const tb = /^(\d+)\/(\d+)$/.exec(String(video.time_base ?? ''));
  return {
    file,
    info: {
      durationS: durationS ?? 0, // from the packets, or refused by checkComplete
      startS,
      width: turned ? height : width,
      height: turned ? width : height,
      fps,
      ...(frameCount !== undefined ? { frameCount } : {}),
      codec: video.codec_name ?? 'unknown',
    },
    streamIndex: video.index,
    ...(tb && Number(tb[1]) > 0 && Number(tb[2]) > 0
      ? { timeBase: Number(tb[1]) / Number(tb[2]), seekGrainS: seekGrain(Number(tb[1]), Number(tb[2])) }
      : {}),
    ...(video.pix_fmt && /^\w+$/.test(video.pix_fmt) ? { pixelFormat: video.pix_fmt } : {}),
    seekable: /mov|mp4|matroska|webm/.test(String(format.format_name ?? '')),
    formatStartS: formatStart,
    frameList: { frames: [], covered: [] },
  };
}

function missingFields(v: { fps?: number; durationS?: number; width?: number }): string {
  return [v.fps === undefined && 'frame rate', v.durationS === undefined && 'duration', v.width === undefined && 'size']
    .filter(Boolean)
    .join(', ');
}

function checkComplete(file: string, probed: ProbedVideo): void {
  if (probed.info.durationS > 0) return;
  throw new MediaError(
    `${file}: ffprobe finds no duration for the video stream`,
    'remux it into MP4 (ffmpeg -i in -c copy out.mp4) or re-encode it',
  );
}

/** k·num/den seconds for the least k that makes it whole microseconds too. */
function seekGrain(num: number, den: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const k = den / gcd(den, 1_000_000 * num);
  return (k * num) / den;
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

/** What ffprobe says about a video file: its video stream's length, start, size and frame rate. */
import { open, stat } from 'node:fs/promises';
import type { FfprobeData } from 'fluent-ffmpeg';
import { MediaError } from '../errors.js';
import { binaries } from './ffmpeg-binaries.js';
import { CORRUPT_HINT, ffmpegReason } from './ffmpeg-messages.js';
import { runFfprobe } from './ffmpeg-process.js';

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
  /** Containers whose index makes accurate seeking reliable. */
  seekable: boolean;
}

export async function probe(file: string): Promise<VideoInfo> {
  return (await probeVideo(file)).info;
}

/** Probes a video file; MediaError says what is wrong with one that cannot be read. */
export async function probeVideo(file: string): Promise<ProbedVideo> {
  await checkReadable(file);
  const { ffprobe: prober } = await binaries();
  const data = await runFfprobe(prober.path, file, ['-v', 'error']).catch((err: unknown) => {
    // fluent-ffmpeg appends ffprobe's stderr after its own first line.
    const lines = (err instanceof Error ? err.message : String(err)).split('\n');
    const signal = /killed with signal (\w+)/.exec(lines[0] ?? '')?.[1];
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

function describeVideo(file: string, data: FfprobeData): ProbedVideo {
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
    file,
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

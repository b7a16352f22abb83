/** Encodes RGB frames to an H.264 MP4 with ffmpeg. */
import { unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { MediaError, UsageError } from '../errors.js';
import { binaries } from './ffmpeg-binaries.js';
import { ffmpegReason, isErrorLine } from './ffmpeg-messages.js';
import { runFfmpeg } from './ffmpeg-process.js';
import type { RgbImage } from './frame.js';

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
  /** At most this many frames between keyframes (default: the encoder's, 250 for libx264). */
  keyframeInterval?: number;
}

/** Encodes RGB frames (all of one size) to an H.264 MP4 with the index at the front. */
export async function encodeVideo(
  frames: Iterable<RgbImage> | AsyncIterable<RgbImage>,
  options: EncodeOptions,
): Promise<{ frameCount: number }> {
  const { fps, out, codec = 'libx264', pixelFormat = 'yuv444p', crf = 18, keyframeInterval } = options;
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

  const { ffmpeg } = await binaries();
  const errorLines: string[] = [];
  const run = runFfmpeg(ffmpeg.path, {
    inputs: [
      {
        source: input,
        options: [
          '-f',
          'rawvideo',
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
        ],
      },
    ],
    outputOptions: [
      '-c:v',
      codec,
      // BT.601 limited range, written and tagged explicitly so every decoder converts back the same way.
      '-filter:v',
      `scale=out_color_matrix=bt601:out_range=tv,format=${pixelFormat}`,
      '-crf',
      String(crf),
      ...(keyframeInterval ? ['-g', String(keyframeInterval)] : []),
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
      '-an',
      '-f',
      'mp4',
    ],
    outputFile: out,
    onStderr: (line) => {
      if (isErrorLine(line)) errorLines.push(line);
    },
  });
  const err = await run.exit;
  if (err) {
    const message = ffmpegReason(errorLines, out) || err.message;
    await unlink(out).catch(() => undefined);
    if (inputError !== undefined) throw inputError;
    throw new MediaError(
      `cannot encode ${out}: ${message}`,
      /not available|Unknown encoder/i.test(message)
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

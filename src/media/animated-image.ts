/**
 * Animated images as videos. Animated GIF and APNG are read by ffmpeg like any video (both the bundled
 * build and Debian's decode them, with each frame's real timestamp); animated WebP is not decodable by
 * ffmpeg before 7.1, so sharp (libvips) reads it: its pages and per-page delays.
 */
import { open } from 'node:fs/promises';
import sharp from 'sharp';
import { MediaError } from '../errors.js';
import type { Frame } from './frame.js';
import type { DecodePlan, KnownFrame } from './frame-plan.js';
import type { ProbedVideo } from './probe.js';

export type AnimationKind = 'gif' | 'apng' | 'webp';

/** Browsers show frames with a delay of 10 ms or less for 100 ms; so do ffmpeg's GIF reader and this one. */
const MIN_DELAY_MS = 10;
const DEFAULT_DELAY_MS = 100;

/** Which kind of animation a file is, from its first bytes (and sharp's page count for GIF); undefined for a still. */
export async function animationKind(file: string): Promise<AnimationKind | undefined> {
  const head = await readHead(file, 64);
  if (head.subarray(0, 4).toString('latin1') === 'GIF8') {
    const meta = await sharp(file)
      .metadata()
      .catch(() => undefined);
    return (meta?.pages ?? 1) > 1 ? 'gif' : undefined;
  }
  if (head.subarray(0, 4).toString('latin1') === 'RIFF' && head.subarray(8, 12).toString('latin1') === 'WEBP') {
    // An extended WebP (VP8X) with the animation flag.
    const extended = head.subarray(12, 16).toString('latin1') === 'VP8X';
    return extended && ((head[20] ?? 0) & 0x02) !== 0 ? 'webp' : undefined;
  }
  if (head.subarray(1, 4).toString('latin1') === 'PNG') return (await apngFrames(file)) > 1 ? 'apng' : undefined;
  return undefined;
}

/** Whether a file (of an image format) holds more than one frame: such a file is answered as a video. */
export async function isAnimatedImage(file: string): Promise<boolean> {
  return (await animationKind(file).catch(() => undefined)) !== undefined;
}

/** Whether the file is a WebP, which sharp reads instead of ffmpeg. */
export async function isWebp(file: string): Promise<boolean> {
  const head = await readHead(file, 12).catch(() => Buffer.alloc(0));
  return head.subarray(0, 4).toString('latin1') === 'RIFF' && head.subarray(8, 12).toString('latin1') === 'WEBP';
}

/** An (animated) WebP as a probed video: every page a frame, shown for its delay. */
export async function probeWebp(file: string): Promise<ProbedVideo> {
  const meta = await sharp(file, { pages: -1 })
    .metadata()
    .catch((err: Error) => {
      throw new MediaError(`cannot read image ${file}: ${err.message}`, 'check that an image viewer opens it');
    });
  const pages = meta.pages ?? 1;
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? (meta.height ?? 0) / pages;
  const delays = Array.from({ length: pages }, (_, k) => {
    const d = meta.delay?.[k] ?? DEFAULT_DELAY_MS;
    return (d <= MIN_DELAY_MS ? DEFAULT_DELAY_MS : d) / 1000;
  });
  const frames: KnownFrame[] = [];
  let t = 0;
  for (const d of delays) {
    frames.push({ t, key: true });
    t += d;
  }
  const durationS = t;
  return {
    file,
    info: { durationS, startS: 0, width, height, fps: pages / durationS, frameCount: pages, codec: 'webp' },
    streamIndex: 0,
    seekable: false,
    formatStartS: 0,
    frameList: { frames, covered: [{ fromS: Number.NEGATIVE_INFINITY, toS: Number.POSITIVE_INFINITY }] },
    reader: 'sharp',
  };
}

/**
 * The frames of a plan's requests (without them, every page) of a WebP read by sharp: each page composited by libvips, alpha
 * dropped as for still images, scaled to the plan's size.
 */
export async function* decodeWebp(
  probed: ProbedVideo,
  plan: Partial<Pick<DecodePlan, 'requests' | 'size'>>,
  signal?: AbortSignal,
): AsyncGenerator<Frame> {
  const frames = probed.frameList.frames;
  const size = plan.size;
  const page = async (k: number) => {
    signal?.throwIfAborted();
    let image = sharp(probed.file, { page: k, pages: 1 }).removeAlpha().toColourspace('srgb');
    if (size) image = image.resize(size.width, size.height, { fit: 'fill', kernel: 'cubic' });
    const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return {
      width: info.width,
      height: info.height,
      rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    };
  };
  if (!plan.requests) {
    for (const [k, f] of frames.entries()) yield { index: k, timestampS: round(f.t), ...(await page(k)) };
    return;
  }
  let index = 0;
  let shared: { threshold: number; k: number; pixels: Awaited<ReturnType<typeof page>> } | undefined;
  for (const request of plan.requests) {
    if (shared?.threshold !== request.threshold) {
      const k = Math.max(
        0,
        frames.findIndex((f) => f.t >= request.threshold),
      );
      shared = { threshold: request.threshold, k, pixels: await page(k) };
      yield { index: index++, timestampS: round(frames[k]?.t ?? 0), ...shared.pixels };
    } else {
      const { pixels, k } = shared;
      yield { index: index++, timestampS: round(frames[k]?.t ?? 0), ...pixels, rgb: pixels.rgb.slice() };
    }
  }
}

function round(t: number): number {
  return Math.round(t * 1e6) / 1e6;
}

async function readHead(file: string, bytes: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The frame count of an APNG's acTL chunk (which comes before the image data), 1 for a plain PNG. */
async function apngFrames(file: string): Promise<number> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(12);
    for (let pos = 8; ; ) {
      const { bytesRead } = await handle.read(header, 0, 12, pos);
      if (bytesRead < 12) return 1;
      const length = header.readUInt32BE(0);
      const type = header.subarray(4, 8).toString('latin1');
      if (type === 'acTL') return header.readUInt32BE(8);
      if (type === 'IDAT' || type === 'IEND') return 1;
      pos += 12 + length;
    }
  } finally {
    await handle.close();
  }
}

/** Test videos whose frames say which frame they are: 8 black/white blocks along the top spell the frame number. */

import type { RgbImage } from '../../src/media/frame.js';
import type { EncodeOptions } from '../../src/media/video-encoder.js';
import { encodeVideo } from '../../src/media/video-encoder.js';
import { scratchDir } from '../helpers/temp-dir.js';

export const WIDTH = 160;
export const HEIGHT = 120;
export const FPS = 10;
export const FRAMES = 50;

/** 16×16 patches of saturated colour below the id blocks. */
export const PATCHES: { x: number; y: number; rgb: [number, number, number] }[] = [
  [220, 30, 30],
  [30, 200, 40],
  [40, 60, 230],
  [240, 220, 30],
  [200, 40, 200],
  [30, 210, 220],
].map((rgb, i) => ({ x: 8 + i * 24, y: 48, rgb: rgb as [number, number, number] }));

const BLOCK = 16;
const ON = 235;
const OFF = 20;
const BACKGROUND = 128;

export function syntheticFrame(k: number): RgbImage {
  const rgb = new Uint8Array(WIDTH * HEIGHT * 3).fill(BACKGROUND);
  const fill = (x0: number, y0: number, size: number, colour: readonly number[]) => {
    for (let y = y0; y < y0 + size; y++) for (let x = x0; x < x0 + size; x++) rgb.set(colour, (y * WIDTH + x) * 3);
  };
  for (let bit = 0; bit < 8; bit++) {
    const v = (k >> bit) & 1 ? ON : OFF;
    fill(bit * BLOCK, 0, BLOCK, [v, v, v]);
  }
  for (const p of PATCHES) fill(p.x, p.y, BLOCK, p.rgb);
  return { width: WIDTH, height: HEIGHT, rgb };
}

/** The frame number a decoded frame shows, at any scale. */
export function frameId(frame: RgbImage): number {
  let id = 0;
  for (let bit = 0; bit < 8; bit++) {
    const x = Math.floor(((bit * BLOCK + BLOCK / 2) * frame.width) / WIDTH);
    const y = Math.floor(((BLOCK / 2) * frame.height) / HEIGHT);
    if (frame.rgb[(y * frame.width + x) * 3 + 1]! > 128) id |= 1 << bit;
  }
  return id;
}

/** Mean colour of the inner 10×10 pixels of a patch. */
export function patchMean(frame: RgbImage, patch: { x: number; y: number }): number[] {
  const sum = [0, 0, 0];
  for (let y = patch.y + 3; y < patch.y + 13; y++) {
    for (let x = patch.x + 3; x < patch.x + 13; x++) {
      for (let c = 0; c < 3; c++) sum[c]! += frame.rgb[(y * frame.width + x) * 3 + c]!;
    }
  }
  return sum.map((s) => s / 100);
}

export async function writeSyntheticVideo(
  file: string,
  options: Partial<EncodeOptions> = {},
  count = FRAMES,
): Promise<string> {
  await encodeVideo(
    Array.from({ length: count }, (_, k) => syntheticFrame(k)),
    { fps: FPS, out: file, ...options },
  );
  return file;
}

/** A temp folder removed after the suite that asked for it (see test/helpers/temp-dir.ts). */
export function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  return scratchDir('media');
}

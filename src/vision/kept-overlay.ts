import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Frame } from '../media/frame.js';

export interface OverlayOptions {
  /** The encoder's input side and patch grid. */
  imageSize: number;
  gridSize: number;
  /**
   * Visual tokens per frame: gridSize² less one when the select strategy dropped the first patch
   * (SigLIP 'default'), plus one when it kept CLIP's class token.
   */
  tokensPerFrame: number;
  /** Brightness kept for pruned patches. */
  dim?: number;
  /** Output pixels per input pixel. */
  scale?: number;
}

/**
 * Writes frame-NNN.png per frame: the frame as the encoder saw it (shortest-edge resize and centre
 * crop), pruned patches dimmed and kept patches at full brightness, so a user sees what the model
 * looked at. Returns the files written.
 */
export async function writeKeptOverlays(
  frames: readonly Frame[],
  keptPerFrame: readonly number[][],
  dir: string,
  opts: OverlayOptions,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const { imageSize: s, gridSize: g } = opts;
  const dim = opts.dim ?? 0.25;
  // Patches cover g·patch pixels; a remainder the patch conv drops (e.g. 384 px at patch 14) is never kept.
  const patch = Math.floor(s / g);
  const files: string[] = [];
  for (const [f, frame] of frames.entries()) {
    const rgb = await sharp(frame.rgb, { raw: { width: frame.width, height: frame.height, channels: 3 } })
      .resize(s, s, { fit: 'cover', position: 'centre' })
      .raw()
      .toBuffer();
    const shift = g * g - opts.tokensPerFrame;
    const kept = new Set((keptPerFrame[f] ?? []).map((token) => token + shift));
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        const inGrid = y < g * patch && x < g * patch;
        if (inGrid && kept.has(Math.floor(y / patch) * g + Math.floor(x / patch))) continue;
        for (let c = 0; c < 3; c++) rgb[(y * s + x) * 3 + c] = Math.round(rgb[(y * s + x) * 3 + c] * dim);
      }
    }
    const file = join(dir, `frame-${String(f).padStart(3, '0')}.png`);
    const scale = opts.scale ?? Math.max(1, Math.round(256 / s));
    await sharp(rgb, { raw: { width: s, height: s, channels: 3 } })
      .resize(s * scale, s * scale, { kernel: 'nearest' })
      .png()
      .toFile(file);
    files.push(file);
  }
  return files;
}

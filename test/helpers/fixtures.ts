import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ffmpegBinaries } from '../../src/media/ffmpeg-binaries.js';
import { writeRandomCheckpoint } from '../../src/model/random-checkpoint.js';

export const REPO_ROOT = join(import.meta.dirname, '..', '..', '..');

const created: string[] = [];
// Every folder made here goes when the test file's process ends (node --test runs each file in its own).
process.on('exit', () => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder under the system temp folder, removed with everything in it when the test file ends. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `sieve-${prefix}-`));
  created.push(dir);
  return dir;
}

/** A small random llava checkpoint (CLIP 64 px / patch 16 + 4-layer Llama with GQA) in a fresh folder. */
export function tinyCheckpoint(seed = 1): string {
  const dir = tempDir('ckpt');
  writeRandomCheckpoint(dir, {
    vision: {
      family: 'clip',
      hiddenSize: 32,
      intermediateSize: 64,
      numLayers: 3,
      numHeads: 4,
      imageSize: 64,
      patchSize: 16,
    },
    text: {
      family: 'llama',
      hiddenSize: 64,
      intermediateSize: 128,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 2,
      vocabSize: 128,
    },
    seed,
  });
  return dir;
}

/** A real H.264 MP4 made by ffmpeg from its lavfi test pattern. */
export async function testVideo(seconds = 3, size = '160x120'): Promise<string> {
  const { ffmpeg } = await ffmpegBinaries();
  const out = join(tempDir('video'), 'testsrc.mp4');
  execFileSync(ffmpeg.path, [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    `testsrc=duration=${seconds}:size=${size}:rate=10`,
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    out,
  ]);
  return out;
}

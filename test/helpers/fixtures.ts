import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VisionInput } from '../../src/engine/vision-input.js';
import { ffmpegBinaries } from '../../src/media/ffmpeg-binaries.js';
import { writeRandomCheckpoint } from '../../src/model/random-checkpoint.js';
import type { ModelConfig, VlmConfig } from '../../src/model/vlm-config.js';

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

/** The config of a llava checkpoint (the tests' tiny checkpoints are llava), or a failed assertion. */
export function llavaConfig(config: ModelConfig): VlmConfig {
  if (config.modelType !== 'llava') throw new Error(`expected a llava checkpoint, got ${config.modelType}`);
  return config;
}

/** [frames, 3, size, size] pixels as the vision input of a llava checkpoint. */
export function llavaVision(pixels: Float32Array, frames: number, config: VlmConfig): VisionInput {
  const size = config.vision.imageSize;
  return {
    units: frames,
    perUnit: { pixel_values: { type: 'float32', data: pixels, dims: [frames, 3, size, size] } },
    shared: {},
    gridRows: config.vision.gridSize,
    gridCols: config.vision.gridSize,
    batch: 8,
  };
}

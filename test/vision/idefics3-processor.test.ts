import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { idefics3Prompt } from '../../src/engine/idefics3-prompt.js';
import { ModelError } from '../../src/errors.js';
import type { RgbImage } from '../../src/media/frame.js';
import { readIdefics3Config } from '../../src/model/idefics3-config.js';
import {
  type Idefics3ProcessorConfig,
  readIdefics3ProcessorConfig,
} from '../../src/model/idefics3-processor-config.js';
import {
  longestEdgeSize,
  multiplesOf,
  processIdefics3Images,
  processIdefics3Video,
} from '../../src/vision/idefics3-processor.js';
import { resizeRgb } from '../../src/vision/pil-resize.js';
import { tempDir } from '../helpers/fixtures.js';

const FIXTURE = join(import.meta.dirname, '../../../test/fixtures/hf-reference/idefics3-tiny');

/** The fixture's sizes (32-px tiles, 2×2 tokens per tile) with SmolVLM2-like settings scaled down. */
const SMALL: Idefics3ProcessorConfig = {
  doResize: true,
  size: { longestEdge: 96 },
  resample: 'lanczos',
  doImageSplitting: true,
  maxImageSize: 32,
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
  imageMean: [0.5, 0.5, 0.5],
  imageStd: [0.5, 0.5, 0.5],
  video: { size: { longestEdge: 96 }, resample: 'bicubic', fps: 1, maxFrames: 64 },
};
const TOKENS_PER_SIDE = 2;
const PLANE = 32 * 32;

function randomImage(width: number, height: number, seed: number): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  let state = seed;
  for (let i = 0; i < rgb.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    rgb[i] = state >>> 24;
  }
  return { width, height, rgb };
}

/** (v/255 − 0.5) / 0.5 in float32, as transformers computes it. */
const normalised = (v: number) => Math.fround(Math.fround(Math.fround(v / 255) - 0.5) / 0.5);

/** Unit u of the pixel values equals the side×side window at (left, top) of `image`, normalised. */
function assertUnit(pixels: Float32Array, u: number, image: RgbImage, left: number, top: number) {
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++) {
        const got = pixels[(u * 3 + c) * PLANE + y * 32 + x];
        const want = normalised(image.rgb[((top + y) * image.width + left + x) * 3 + c]);
        if (got !== want) assert.fail(`unit ${u} channel ${c} (${x}, ${y}): ${got} ≠ ${want}`);
      }
}

describe('Idefics3 processor sizes (transformers formulas)', () => {
  it('resizes the longest edge to size.longest_edge, up or down, the other side even', () => {
    assert.deepEqual(longestEdgeSize(640, 480, 2048), { width: 2048, height: 1536 });
    assert.deepEqual(longestEdgeSize(480, 640, 2048), { width: 1536, height: 2048 });
    assert.deepEqual(longestEdgeSize(100, 100, 2048), { width: 2048, height: 2048 });
    assert.deepEqual(longestEdgeSize(1000, 100, 2048), { width: 2048, height: 204 });
    // int(2048 · 333/517) = 1319, rounded up to even.
    assert.deepEqual(longestEdgeSize(333, 517, 2048), { width: 1320, height: 2048 });
    // Capped at 4096 after the resize.
    assert.deepEqual(longestEdgeSize(300, 200, 6000), { width: 4096, height: 2730 });
  });

  it('rounds both sides up to multiples of max_image_size for splitting', () => {
    assert.deepEqual(multiplesOf({ width: 2048, height: 1536 }, 512), { width: 2048, height: 1536 });
    assert.deepEqual(multiplesOf({ width: 2048, height: 204 }, 512), { width: 2048, height: 512 });
    assert.deepEqual(multiplesOf({ width: 1320, height: 2048 }, 512), { width: 1536, height: 2048 });
    assert.deepEqual(multiplesOf({ width: 513, height: 10 }, 512), { width: 1024, height: 512 });
  });
});

describe('Idefics3 image processor', () => {
  it('splits a 3:2 image into 2×3 tiles row-major, then the global image resized with LANCZOS', () => {
    const image = randomImage(96, 64, 1);
    const out = processIdefics3Images([image], SMALL, TOKENS_PER_SIDE);
    assert.equal(out.units, 7);
    assert.deepEqual(out.splits, [{ rows: 2, cols: 3 }]);
    assert.equal(out.pixels.length, 7 * 3 * PLANE);
    assert.deepEqual(out.tokenGrids, Array(7).fill({ rows: 2, cols: 2 }));
    for (let r = 0; r < 2; r++) for (let c = 0; c < 3; c++) assertUnit(out.pixels, r * 3 + c, image, c * 32, r * 32);
    assertUnit(out.pixels, 6, { width: 32, height: 32, rgb: resizeRgb(image, 32, 32, 'lanczos') }, 0, 0);
  });

  it('gives the tile grid and token counts of several aspect ratios', () => {
    const cfg = { ...SMALL, size: { longestEdge: 128 } };
    const cases = [
      { width: 640, height: 480, rows: 3, cols: 4 }, // → 128×96
      { width: 480, height: 640, rows: 4, cols: 3 },
      { width: 40, height: 90, rows: 4, cols: 2 }, // → 56×128 → 64×128
      { width: 300, height: 40, rows: 1, cols: 4 }, // → 128×18 → 128×32
      { width: 50, height: 50, rows: 4, cols: 4 }, // upscaled to 128×128
    ];
    for (const [i, c] of cases.entries()) {
      const out = processIdefics3Images([randomImage(c.width, c.height, i + 2)], cfg, TOKENS_PER_SIDE);
      const label = `${c.width}×${c.height}`;
      assert.deepEqual(out.splits, [{ rows: c.rows, cols: c.cols }], label);
      assert.equal(out.units, c.rows * c.cols + 1, label);
      assert.equal(out.pixels.length, out.units * 3 * PLANE, label);
      const pieces = idefics3Prompt({ kind: 'images', splits: out.splits }, 'Q?', 4);
      const imageTokens = pieces.reduce((n, p) => n + ('tokens' in p ? p.tokens : 0), 0);
      assert.equal(imageTokens, out.units * TOKENS_PER_SIDE ** 2, label);
      const tiles = pieces.filter((p) => 'special' in p && p.special.startsWith('<row_'));
      assert.equal(tiles.length, c.rows * c.cols, label);
    }
  });

  it('keeps an image no larger than one tile whole, and squares every image without splitting', () => {
    const small = { ...SMALL, size: { longestEdge: 32 } };
    const whole = processIdefics3Images([randomImage(20, 12, 7)], small, TOKENS_PER_SIDE);
    assert.deepEqual(whole.splits, [{ rows: 0, cols: 0 }]);
    assert.equal(whole.units, 1);
    const unsplit = processIdefics3Images(
      [randomImage(96, 64, 8), randomImage(30, 70, 9)],
      { ...SMALL, doImageSplitting: false },
      TOKENS_PER_SIDE,
    );
    assert.deepEqual(unsplit.splits, [
      { rows: 0, cols: 0 },
      { rows: 0, cols: 0 },
    ]);
    assert.equal(unsplit.units, 2);
  });

  it('numbers the units of several images in order', () => {
    const out = processIdefics3Images([randomImage(96, 64, 10), randomImage(20, 20, 11)], SMALL, TOKENS_PER_SIDE);
    assert.deepEqual(out.splits, [
      { rows: 2, cols: 3 },
      { rows: 3, cols: 3 },
    ]);
    assert.equal(out.units, 7 + 10);
    const pieces = idefics3Prompt({ kind: 'images', splits: out.splits }, 'Q?', 4);
    const units = pieces.flatMap((p) => ('unit' in p ? [p.unit] : []));
    assert.deepEqual(
      units,
      Array.from({ length: 17 }, (_, i) => i),
    );
  });
});

describe('SmolVLM2 video processor', () => {
  it('resizes every frame to the video size, then to one max_image_size square, never split', () => {
    const frames = [randomImage(64, 48, 12), randomImage(64, 48, 13), randomImage(64, 48, 14)];
    const out = processIdefics3Video(frames, SMALL, TOKENS_PER_SIDE);
    assert.equal(out.units, 3);
    assert.deepEqual(out.tokenGrids, Array(3).fill({ rows: 2, cols: 2 }));
    for (const [u, frame] of frames.entries()) {
      const first = { width: 96, height: 72, rgb: resizeRgb(frame, 96, 72, 'bicubic') };
      assertUnit(out.pixels, u, { width: 32, height: 32, rgb: resizeRgb(first, 32, 32, 'bicubic') }, 0, 0);
    }
  });

  it('refuses do_resize false', () => {
    assert.throws(() => processIdefics3Video([randomImage(8, 8, 1)], { ...SMALL, doResize: false }, 2), ModelError);
  });
});

describe('preprocessor_config.json of an Idefics3 checkpoint', () => {
  function checkpoint(preprocessor: Record<string, unknown>, imageSize = 512): string {
    const dir = tempDir('idefics3-proc');
    const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
    config.vision_config.image_size = imageSize;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessor));
    return dir;
  }
  // The settings of HuggingFaceTB/SmolVLM2-256M-Video-Instruct.
  const SMOLVLM2 = {
    do_image_splitting: true,
    max_image_size: { longest_edge: 512 },
    resample: 1,
    rescale_factor: 1 / 255,
    size: { longest_edge: 2048 },
    video_sampling: { fps: 1, max_frames: 64, video_size: { longest_edge: 512 } },
  };

  it("reads SmolVLM2's settings; size overrides video_size as in SmolVLMVideoProcessor", () => {
    const dir = checkpoint(SMOLVLM2);
    const cfg = readIdefics3ProcessorConfig(dir, readIdefics3Config(dir));
    assert.deepEqual(cfg.size, { longestEdge: 2048 });
    assert.equal(cfg.resample, 'lanczos');
    assert.equal(cfg.maxImageSize, 512);
    assert.deepEqual(cfg.imageMean, [0.5, 0.5, 0.5]);
    assert.deepEqual(cfg.video, { size: { longestEdge: 2048 }, resample: 'bicubic', fps: 1, maxFrames: 64 });
    const { size: _, ...withoutSize } = SMOLVLM2;
    const videoOnly = checkpoint(withoutSize);
    const video = readIdefics3ProcessorConfig(videoOnly, readIdefics3Config(videoOnly)).video;
    assert.deepEqual(video.size, { longestEdge: 512 });
  });

  it('refuses a max_image_size that is not the vision tower image_size', () => {
    const dir = checkpoint(SMOLVLM2, 384);
    assert.throws(() => readIdefics3ProcessorConfig(dir, readIdefics3Config(dir)), /max_image_size/);
  });
});

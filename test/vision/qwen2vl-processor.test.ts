import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelError, UsageError } from '../../src/errors.js';
import type { RgbImage } from '../../src/media/frame.js';
import { readQwen2VlConfig } from '../../src/model/qwen2vl-config.js';
import {
  flattenPatches,
  processQwen2VlImage,
  processQwen2VlVideo,
  type Qwen2VlProcessorConfig,
  readQwen2VlProcessorConfig,
  smartResize,
} from '../../src/vision/qwen2vl-processor.js';
import { tempDir } from '../helpers/fixtures.js';

const FIXTURE = join(import.meta.dirname, '../../../test/fixtures/hf-reference/qwen2-vl-tiny');
const readInput = (name: string) =>
  JSON.parse(readFileSync(join(FIXTURE, `input_${name}.json`), 'utf8')) as Record<
    string,
    { shape: number[]; data: number[] }
  > & { image_grid_thw?: number[][]; video_grid_thw?: number[][] };

/** Qwen/Qwen2-VL-2B-Instruct's preprocessor_config.json. */
const REAL: Qwen2VlProcessorConfig = {
  doResize: true,
  resample: 'bicubic',
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
  minPixels: 3136,
  maxPixels: 12845056,
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
};
/** Qwen2VLImageProcessor's own defaults (max_pixels 28·28·1280). */
const DEFAULTS: Qwen2VlProcessorConfig = { ...REAL, maxPixels: 1003520 };

function randomImage(width: number, height: number, seed: number): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  let s = seed;
  for (let i = 0; i < rgb.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    rgb[i] = s >>> 24;
  }
  return { width, height, rgb };
}

/** transformers: rescale in float64 cast to float32, then (x − mean) / std in float32. */
function normalised(v: number, c: number): number {
  const f = new Float32Array(3);
  f[0] = v / 255;
  f[1] = REAL.imageMean[c];
  f[2] = REAL.imageStd[c];
  f[0] = f[0] - f[1];
  return Math.fround(f[0] / f[2]);
}

describe('Qwen2-VL patch flattening', () => {
  it("gives the fixture's pixel_values for its image (repeated in time)", () => {
    const input = readInput('image');
    const out = flattenPatches([Float32Array.from(input.image_chw.data)], 24, 16, {
      patchSize: 4,
      temporalPatchSize: 2,
      mergeSize: 2,
    });
    assert.deepEqual(out.dims, [1, 24, 96]);
    assert.deepEqual(Array.from(out.pixels), input.pixel_values.data);
    assert.deepEqual([out.grid.t, out.grid.h, out.grid.w], input.image_grid_thw?.[0]);
    assert.deepEqual(out.tokenGrid, { rows: 3, cols: 2 });
  });

  it("gives the fixture's pixel_values_videos for its 6 frames (3 temporal slices)", () => {
    const input = readInput('video');
    const plane = 3 * 16 * 24;
    const frames = Array.from({ length: 6 }, (_, i) =>
      Float32Array.from(input.video_frames_tchw.data.slice(i * plane, (i + 1) * plane)),
    );
    const out = flattenPatches(frames, 16, 24, { patchSize: 4, temporalPatchSize: 2, mergeSize: 2 });
    assert.deepEqual(out.dims, [3, 24, 96]);
    assert.deepEqual(Array.from(out.pixels), input.pixel_values_videos.data);
    assert.deepEqual([out.grid.t, out.grid.h, out.grid.w], input.video_grid_thw?.[0]);
    assert.deepEqual(out.tokenGrid, { rows: 2, cols: 3 });
  });

  it('repeats the last frame of an odd count, and lists each merge group of patches consecutively', () => {
    const frames = [0, 1, 2].map((f) => Float32Array.from({ length: 3 * 8 * 8 }, (_, i) => f * 1000 + i));
    const sizes = { patchSize: 2, temporalPatchSize: 2, mergeSize: 2 };
    const out = flattenPatches(frames, 8, 8, sizes);
    assert.deepEqual(out.dims, [2, 16, 24]);
    const last = flattenPatches([frames[2], frames[2]], 8, 8, sizes);
    assert.deepEqual(out.pixels.subarray(16 * 24), last.pixels);
    assert.deepEqual(out.patchPositions.slice(0, 12), [0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3]);
  });
});

describe('smart_resize', () => {
  const cases: [number, number, number, number, { height: number; width: number }][] = [
    [480, 640, 3136, 1003520, { height: 476, width: 644 }],
    [640, 480, 3136, 1003520, { height: 644, width: 476 }],
    // over max_pixels: scaled down by √(area / max) and floored
    [1080, 1920, 3136, 1003520, { height: 728, width: 1316 }],
    [1080, 1920, 3136, 12845056, { height: 1092, width: 1932 }],
    // under min_pixels: scaled up and ceiled
    [30, 40, 3136, 1003520, { height: 56, width: 84 }],
    // Python's round(): 70 / 28 = 2.5 rounds to 2, 42 / 28 = 1.5 to 2
    [70, 280, 3136, 1003520, { height: 56, width: 280 }],
    [42, 280, 3136, 1003520, { height: 56, width: 280 }],
  ];
  for (const [h, w, min, max, expected] of cases) {
    it(`${w}×${h} within [${min}, ${max}] → ${expected.width}×${expected.height}`, () => {
      assert.deepEqual(smartResize(h, w, 28, min, max), expected);
    });
  }

  it('refuses pictures smaller than a merged patch and extreme aspect ratios', () => {
    assert.throws(() => smartResize(20, 100, 28, 3136, 1003520), UsageError);
    assert.throws(() => smartResize(28, 6000, 28, 3136, 1003520), UsageError);
  });
});

describe('Qwen2VLImageProcessor port', () => {
  const shapes: [number, number][] = [
    [640, 480],
    [480, 640],
    [1920, 1080],
    [100, 100],
    [40, 30],
  ];
  for (const [width, height] of shapes) {
    it(`makes one unit of tokens for a ${width}×${height} image`, () => {
      const out = processQwen2VlImage(randomImage(width, height, width + height), DEFAULTS);
      const resized = smartResize(height, width, 28, DEFAULTS.minPixels, DEFAULTS.maxPixels);
      const gh = resized.height / 14;
      const gw = resized.width / 14;
      assert.deepEqual(out.resized, resized);
      assert.deepEqual(out.grid, { t: 1, h: gh, w: gw });
      assert.deepEqual(out.dims, [1, gh * gw, 3 * 2 * 14 * 14]);
      assert.deepEqual(out.tokenGrid, { rows: gh / 2, cols: gw / 2 });
      assert.equal(out.patchPositions.length, 2 * gh * gw);
      assert.equal(out.pixels.length, gh * gw * 1176);
    });
  }

  it('rescales and normalises each byte as transformers does, where no resize is needed', () => {
    const image = randomImage(84, 56, 7);
    const out = processQwen2VlImage(image, DEFAULTS);
    assert.deepEqual(out.grid, { t: 1, h: 4, w: 6 });
    // Row 4 is merge group 1's first patch, (0, 2); column (c, t, py, px) = (2, 1, 3, 5).
    const [y, x, c] = [3, 2 * 14 + 5, 2];
    const col = ((c * 2 + 1) * 14 + 3) * 14 + 5;
    assert.equal(out.pixels[4 * 1176 + col], normalised(image.rgb[(y * 84 + x) * 3 + c], c));
  });

  it('pairs video frames into units, the last one repeated when the count is odd', () => {
    const frames = [1, 2, 3].map((seed) => randomImage(64, 48, seed));
    const out = processQwen2VlVideo(frames, DEFAULTS);
    assert.equal(out.grid.t, 2);
    const perUnit = out.dims[1] * out.dims[2];
    const lastPair = processQwen2VlVideo([frames[2], frames[2]], DEFAULTS);
    assert.deepEqual(out.pixels.subarray(perUnit), lastPair.pixels);
    assert.throws(() => processQwen2VlVideo([frames[0], randomImage(48, 64, 4)], DEFAULTS), UsageError);
  });

  it('reads preprocessor_config.json in both spellings of min/max pixels', () => {
    const vision = readQwen2VlConfig(FIXTURE).vision;
    const dir = tempDir('qwen2vl-processor');
    const file = join(dir, 'preprocessor_config.json');
    writeFileSync(file, JSON.stringify({ min_pixels: 100, max_pixels: 5000, patch_size: 4, merge_size: 2 }));
    assert.deepEqual(
      [readQwen2VlProcessorConfig(dir, vision).minPixels, readQwen2VlProcessorConfig(dir, vision).maxPixels],
      [100, 5000],
    );
    writeFileSync(file, JSON.stringify({ size: { shortest_edge: 200, longest_edge: 9000 }, resample: 2 }));
    const config = readQwen2VlProcessorConfig(dir, vision);
    assert.deepEqual([config.minPixels, config.maxPixels, config.resample], [200, 9000, 'bilinear']);
    writeFileSync(file, JSON.stringify({ patch_size: 14 }));
    assert.throws(() => readQwen2VlProcessorConfig(dir, vision), ModelError);
  });
});

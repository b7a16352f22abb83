import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import type { RgbImage } from '../../src/media/frame.js';
import { readOnevisionConfig } from '../../src/model/onevision-config.js';
import {
  anyresLayout,
  type OnevisionProcessors,
  processOnevisionImage,
  processOnevisionVideo,
  readOnevisionProcessors,
  selectBestResolution,
} from '../../src/vision/onevision-processor.js';
import { tempDir } from '../helpers/fixtures.js';

const FIXTURE = join(import.meta.dirname, '../../../test/fixtures/hf-reference/llava-onevision-tiny');
const tiny = readOnevisionConfig(FIXTURE);

/** llava-hf/llava-onevision-qwen2-0.5b-ov-hf's preprocessor_config.json, sized for the tiny tower's 12 px tiles. */
const PREPROCESSOR = {
  do_convert_rgb: true,
  do_normalize: true,
  do_pad: true,
  do_rescale: true,
  do_resize: true,
  image_mean: [0.5, 0.5, 0.5],
  image_processor_type: 'LlavaOnevisionImageProcessor',
  image_std: [0.5, 0.5, 0.5],
  processor_class: 'LlavaOnevisionProcessor',
  resample: 3,
  rescale_factor: 0.00392156862745098,
  size: { height: 12, width: 12 },
};

function checkpointWith(preprocessor: Record<string, unknown>): string {
  const dir = tempDir('onevision-processor');
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessor));
  return dir;
}

const processors = readOnevisionProcessors(checkpointWith(PREPROCESSOR), tiny);

/** The 0.5B checkpoint's numbers: 384 px tiles of 27×27 patches, pinpoints 384·{1..6}², anyres_max_9. */
const REAL: OnevisionProcessors = {
  ...processors,
  tileSize: 384,
  patchGrid: 27,
  pooledGrid: 14,
  pinpoints: [1, 2, 3, 4, 5, 6].flatMap((h) => [1, 2, 3, 4, 5, 6].map((w): [number, number] => [384 * h, 384 * w])),
  maxAnyresTiles: 9,
};

/** An image whose top `split` rows are one colour and the rest another. */
function twoTone(width: number, height: number, split: number, top: number[], bottom: number[]): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) rgb.set(y < split ? top : bottom, (y * width + x) * 3);
  return { width, height, rgb };
}

/** (v / 255 − 0.5) / 0.5 in float32, as transformers rescales and normalises. */
const norm = (v: number) => Math.fround(Math.fround(Math.fround(v * (1 / 255)) - 0.5) / 0.5);

/** Tokens an image gives: the base tile, then the grid with a newline after each row. */
function tokens(p: OnevisionProcessors, height: number, width: number): number {
  const [rows, cols] = anyresLayout(height, width, p).tokenGrid;
  return p.patchGrid ** 2 + rows * (cols + 1);
}

describe('LLaVA-OneVision processor', () => {
  it('selects the resolution that keeps the most pixels, then wastes the least', () => {
    assert.deepEqual(selectBestResolution(15, 20, tiny.imageGridPinpoints), [24, 24]);
    assert.deepEqual(selectBestResolution(40, 48, tiny.imageGridPinpoints), [48, 48]);
    assert.deepEqual(selectBestResolution(1000, 300, REAL.pinpoints), [1152, 384]);
    assert.deepEqual(selectBestResolution(200, 1600, REAL.pinpoints), [384, 1920]);
  });

  it("gives the fixture's geometry: unpadding, and the 1.1-ratio resize", () => {
    // 15×20 on 24×24: a 6×6 grid of patches; int(15·6/20) = 4 rows kept, 1 cut at each side; ratio √(24/81).
    assert.deepEqual(anyresLayout(15, 20, processors), {
      imageSize: [15, 20],
      bestResolution: [24, 24],
      tileGrid: [2, 2],
      crop: [1, 0, 5, 6],
      tokenGrid: [4, 6],
    });
    assert.equal(tokens(processors, 15, 20), 37);
    // 40×48 on 48×48: 12×12 unpadded to 10×12; ratio √(120/81) = 1.217 → int(10 // r) × int(12 // r) = 8×9.
    assert.deepEqual(anyresLayout(40, 48, processors), {
      imageSize: [40, 48],
      bestResolution: [48, 48],
      tileGrid: [4, 4],
      crop: [1, 0, 11, 12],
      tokenGrid: [8, 9],
    });
    assert.equal(tokens(processors, 40, 48), 89);
  });

  it('counts the tokens of the 0.5B model for several aspect ratios', () => {
    // 480×640 → 768×768, 54×54 patches, int(480·54/640) = 40 rows: 729 + 40·55.
    assert.deepEqual(anyresLayout(480, 640, REAL).crop, [7, 0, 47, 54]);
    assert.equal(tokens(REAL, 480, 640), 2929);
    // Portrait 1000×300 → 1152×384, 81×27 patches, int(300·81/1000) = 24 columns: 25 kept (1 cut at each side).
    assert.deepEqual(anyresLayout(1000, 300, REAL).crop, [0, 1, 81, 26]);
    assert.equal(tokens(REAL, 1000, 300), 729 + 81 * 26);
    // Panorama 200×1600 → 384×1920, 27×135 patches, int(200·135/1600) = 16: 17 rows kept (5 cut at each side).
    assert.deepEqual(anyresLayout(200, 1600, REAL).crop, [5, 0, 22, 135]);
    assert.equal(tokens(REAL, 200, 1600), 729 + 17 * 136);
    // 1000×2000 → 1152×2304, 81×162, ratio √2 → 57×114.
    assert.deepEqual(anyresLayout(1000, 2000, REAL).tokenGrid, [57, 114]);
    assert.equal(tokens(REAL, 1000, 2000), 729 + 57 * 115);
    // The largest: 6×6 tiles, 162×162 patches, ratio 2 → 81×81: LLaVA-OneVision's 7371 tokens.
    assert.equal(tokens(REAL, 2304, 2304), 7371);
  });

  it('tiles an image: base tile first, the grid row-major, black padding centred', () => {
    const image = twoTone(20, 15, 7, [200, 100, 50], [10, 20, 30]);
    const out = processOnevisionImage(image, processors);
    assert.deepEqual(out.pixels.dims, [5, 3, 12, 12]);
    assert.deepEqual(out.units, [
      { rows: 3, cols: 3, newlineAfterRow: false },
      { rows: 4, cols: 6, newlineAfterRow: true },
    ]);
    const at = (tile: number, c: number, y: number, x: number) => out.pixels.data[((tile * 3 + c) * 12 + y) * 12 + x];
    // Resized to 24×18 (width fills, height ceil(15·1.2)), pasted at row 3 of the 24×24 canvas.
    for (const tile of [1, 2]) {
      for (let y = 0; y < 3; y++) assert.equal(at(tile, 0, y, 5), norm(0), `tile ${tile} row ${y} is padding`);
      assert.equal(at(tile, 0, 3, 5), norm(200), `tile ${tile}: first image row`);
    }
    for (const tile of [3, 4]) {
      assert.equal(at(tile, 2, 8, 5), norm(30), `tile ${tile}: last image row`);
      for (let y = 9; y < 12; y++) assert.equal(at(tile, 2, y, 5), norm(0), `tile ${tile} row ${y} is padding`);
    }
    // The base tile is the whole image squeezed to 12×12: no padding.
    assert.equal(at(0, 0, 0, 0), norm(200));
    assert.equal(at(0, 2, 11, 11), norm(30));
  });

  it('pads a portrait image at the left and right', () => {
    const image = twoTone(15, 20, 10, [255, 255, 255], [255, 255, 255]);
    const out = processOnevisionImage(image, processors);
    assert.deepEqual(out.layout.crop, [0, 1, 6, 5]);
    const at = (tile: number, y: number, x: number) => out.pixels.data[(tile * 3 * 12 + y) * 12 + x];
    // 18×24 pasted at column 3.
    assert.deepEqual([at(1, 4, 2), at(1, 4, 3), at(2, 4, 8), at(2, 4, 9)], [norm(0), norm(255), norm(255), norm(0)]);
  });

  it('resizes every video frame to the tile size, one pooled unit per frame', () => {
    const frames = [twoTone(32, 18, 9, [0, 0, 0], [255, 0, 0]), twoTone(7, 5, 5, [9, 9, 9], [9, 9, 9])];
    const out = processOnevisionVideo(frames, processors);
    assert.deepEqual(out.pixels.dims, [2, 3, 12, 12]);
    assert.deepEqual(out.units, [
      { rows: 2, cols: 2, newlineAfterRow: false },
      { rows: 2, cols: 2, newlineAfterRow: false },
    ]);
    assert.equal(out.pixels.data[0], norm(0));
    assert.equal(out.pixels.data[11 * 12], norm(255));
    assert.equal(out.pixels.data[3 * 144 + 5], norm(9));
  });

  it('reads preprocessor_config.json and refuses one made for another tower', () => {
    assert.equal(processors.image.resample, 'bicubic');
    assert.deepEqual(processors.video.imageMean, [0.5, 0.5, 0.5]);
    const video = checkpointWith(PREPROCESSOR);
    writeFileSync(join(video, 'video_preprocessor_config.json'), JSON.stringify({ ...PREPROCESSOR, resample: 2 }));
    const split = readOnevisionProcessors(video, tiny);
    assert.equal(split.video.resample, 'bilinear');
    assert.equal(split.image.resample, 'bicubic');
    const defaults = readOnevisionProcessors(tempDir('onevision-processor'), tiny);
    assert.equal(defaults.image.resample, 'bicubic');
    assert.deepEqual(defaults.image.imageMean, [0.48145466, 0.4578275, 0.40821073]);

    const wrongSize = checkpointWith({ ...PREPROCESSOR, size: { height: 384, width: 384 } });
    assert.throws(() => readOnevisionProcessors(wrongSize, tiny), ModelError);
    const wrongPins = checkpointWith({ ...PREPROCESSOR, image_grid_pinpoints: [[12, 12]] });
    assert.throws(() => readOnevisionProcessors(wrongPins, tiny), /image_grid_pinpoints differ/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/errors.js';
import type { Frame } from '../../src/media/frame.js';
import type { ProcessorConfig } from '../../src/model/processor-config.js';
import { outputSize, preprocess, preprocessBatch, resizedSize } from '../../src/vision/preprocess.js';

const CLIP: ProcessorConfig = {
  doResize: true,
  size: { shortestEdge: 336 },
  resample: 'bicubic',
  doCenterCrop: true,
  cropSize: { height: 336, width: 336 },
  doRescale: true,
  rescaleFactor: 0.00392156862745098,
  doNormalize: true,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
};

const SIGLIP: ProcessorConfig = {
  ...CLIP,
  size: { height: 64, width: 64 },
  doCenterCrop: false,
  imageMean: [0.5, 0.5, 0.5],
  imageStd: [0.5, 0.5, 0.5],
};

/** Bytes in, bytes out: only the resize and crop. */
const RAW: ProcessorConfig = { ...CLIP, doCenterCrop: false, doRescale: false, doNormalize: false };

/** transformers: rescale in float64 cast to float32, then (x − mean) / std in float32. */
function transformersValue(v: number, c: number, config: ProcessorConfig): number {
  const f = new Float32Array(4);
  f[0] = v * config.rescaleFactor;
  f[1] = config.imageMean[c]!;
  f[2] = config.imageStd[c]!;
  f[3] = f[0] - f[1];
  f[0] = f[3] / f[2];
  return f[0];
}

function frame(width: number, height: number, pixel: (x: number, y: number) => readonly number[]): Frame {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rgb.set(pixel(x, y), (y * width + x) * 3);
  return { index: 0, timestampS: 0, width, height, rgb };
}

/** Channel c of the CHW image at (x, y). */
const at = (chw: Float32Array, width: number, height: number, c: number, x: number, y: number) =>
  chw[c * width * height + y * width + x]!;

/**
 * Pillow's 8-bit BICUBIC resize written out plainly from src/libImaging/Resample.c (two passes,
 * fixed point with 22 fractional bits), as a reference for the optimised one.
 */
function pillowBicubic(src: Uint8Array, w: number, h: number, ow: number, oh: number): Uint8Array {
  const cubic = (x: number) => {
    const ax = Math.abs(x);
    if (ax < 1) return (1.5 * ax - 2.5) * ax * ax + 1;
    if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * -0.5;
    return 0;
  };
  const pass = (img: Uint8Array, iw: number, ih: number, out: number, alongX: boolean) => {
    const inSize = alongX ? iw : ih;
    const scale = inSize / out;
    const fs = Math.max(scale, 1);
    const support = 2 * fs;
    const res = new Uint8Array((alongX ? out * ih : iw * out) * 3);
    for (let o = 0; o < out; o++) {
      const center = (o + 0.5) * scale;
      const lo = Math.max(0, Math.trunc(center - support + 0.5));
      const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
      const w = [];
      for (let i = lo; i < hi; i++) w.push(cubic((i - center + 0.5) * (1 / fs)));
      const sum = w.reduce((a, b) => a + b, 0);
      const k = w.map((v) => Math.trunc(v / sum < 0 ? (v / sum) * 2 ** 22 - 0.5 : (v / sum) * 2 ** 22 + 0.5));
      for (let j = 0; j < (alongX ? ih : iw); j++) {
        for (let c = 0; c < 3; c++) {
          let acc = 2 ** 21;
          for (let i = lo; i < hi; i++) acc += img[(alongX ? j * iw + i : i * iw + j) * 3 + c]! * k[i - lo]!;
          res[(alongX ? j * out + o : o * iw + j) * 3 + c] = Math.min(255, Math.max(0, Math.floor(acc / 2 ** 22)));
        }
      }
    }
    return res;
  };
  const horizontal = ow === w ? src : pass(src, w, h, ow, true);
  return oh === h ? horizontal : pass(horizontal, ow, h, oh, false);
}

describe('preprocess', () => {
  it('sizes like transformers: shortest edge, long side truncated', () => {
    assert.deepEqual(resizedSize({ shortestEdge: 336 }, 640, 480), { width: 448, height: 336 });
    assert.deepEqual(resizedSize({ shortestEdge: 336 }, 480, 640), { width: 336, height: 448 });
    assert.deepEqual(resizedSize({ shortestEdge: 224 }, 500, 333), { width: 336, height: 224 });
    assert.deepEqual(resizedSize({ shortestEdge: 224 }, 300, 300), { width: 224, height: 224 });
    assert.deepEqual(resizedSize({ height: 64, width: 48 }, 640, 480), { width: 48, height: 64 });
    assert.deepEqual(outputSize(CLIP, 1920, 1080), { width: 336, height: 336 });
    assert.deepEqual(outputSize(SIGLIP, 1920, 1080), { width: 64, height: 64 });
  });

  it('normalises a solid colour to exactly what transformers computes', () => {
    const rgb = [200, 100, 50];
    const out = preprocess(
      frame(640, 480, () => rgb),
      CLIP,
    );
    assert.equal(out.length, 3 * 336 * 336);
    const expected = rgb.map((v, c) => transformersValue(v, c, CLIP));
    // The same numbers worked out by hand: (200/255 − 0.48145466) / 0.26862954 …
    for (const [c, v] of [1.127423, -0.25132, -0.769216].entries()) {
      assert.ok(Math.abs(expected[c]! - v) < 1e-6, `${expected[c]} vs ${v}`);
    }
    for (let c = 0; c < 3; c++) {
      const plane = out.subarray(c * 336 * 336, (c + 1) * 336 * 336);
      assert.ok(
        plane.every((v) => v === expected[c]),
        `channel ${c} is exactly ${expected[c]}`,
      );
    }
  });

  it('SigLIP: exact size, mean and std 0.5', () => {
    const out = preprocess(
      frame(100, 50, () => [0, 255, 51]),
      SIGLIP,
    );
    assert.equal(out.length, 3 * 64 * 64);
    assert.deepEqual(
      [at(out, 64, 64, 0, 10, 10), at(out, 64, 64, 1, 10, 10), at(out, 64, 64, 2, 63, 63)],
      [-1, 1, transformersValue(51, 2, SIGLIP)],
    );
  });

  it('centre-crops with floor offsets', () => {
    // Already 448×336: no resize; the crop keeps columns 56…391. Red left half, blue right half.
    const out = preprocess(
      frame(448, 336, (x) => (x < 224 ? [255, 0, 0] : [0, 0, 255])),
      CLIP,
    );
    const red = (x: number) => at(out, 336, 336, 0, x, 100) > 0;
    assert.ok(red(167) && !red(168), 'the colour boundary lands at output column 168 (224 − 56)');
    // 7×4 cropped to 4×2: left = floor(3 / 2) = 1, top = floor(2 / 2) = 1.
    const odd = preprocess(
      frame(7, 4, (x, y) => [x * 30, y * 60, 0]),
      { ...RAW, doResize: false, doCenterCrop: true, cropSize: { height: 2, width: 4 } },
    );
    assert.deepEqual([...odd.subarray(0, 8)], [30, 60, 90, 120, 30, 60, 90, 120]);
    assert.deepEqual([...odd.subarray(8, 16)], [60, 60, 60, 60, 120, 120, 120, 120]);
  });

  it('pads with zeros where the crop is larger than the image, as transformers does', () => {
    const config: ProcessorConfig = { ...RAW, doResize: false, doCenterCrop: true, cropSize: { height: 8, width: 8 } };
    const out = preprocess(
      frame(4, 6, () => [255, 255, 255]),
      config,
    );
    // The 4×6 image sits at left 2, top 1 of the 8×8 crop.
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const inside = x >= 2 && x < 6 && y >= 1 && y < 7;
        assert.equal(at(out, 8, 8, 0, x, y), inside ? 255 : 0, `(${x}, ${y})`);
      }
    }
  });

  it('resamples with pixel centres like PIL: a ramp stays a ramp', () => {
    // Pixel i covers [i, i + 1); a ramp of step s has the value s·(u − 0.5) at position u, and
    // away from the edges both cubic upsampling and antialiased downsampling reproduce it exactly.
    const up = preprocess(
      frame(13, 1, (x) => [x * 20, 0, 0]),
      { ...RAW, size: { height: 1, width: 26 } },
    );
    for (let x = 4; x < 22; x++) assert.equal(up[x], 10 * x - 5, `upscaled x=${x}`); // u = (x + 0.5) / 2
    const down = preprocess(
      frame(26, 1, (x) => [x * 10, 0, 0]),
      { ...RAW, size: { height: 1, width: 13 } },
    );
    for (let x = 2; x < 11; x++) assert.equal(down[x], 20 * x + 5, `downscaled x=${x}`); // u = 2x + 1
  });

  it("matches Pillow's bicubic resize byte for byte, up and down", () => {
    let seed = 1;
    const noise = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % 256;
    };
    for (const [w, h, ow, oh] of [
      [64, 48, 40, 30],
      [37, 23, 100, 61],
      [50, 50, 17, 33],
      [20, 30, 20, 45],
    ] as const) {
      const f = frame(w, h, (x, y) => [noise(), (x * 255) / w, ((x + y) % 9) * 28]);
      const out = preprocess(f, { ...RAW, size: { height: oh, width: ow } });
      const ref = pillowBicubic(f.rgb, w, h, ow, oh);
      for (let i = 0; i < ow * oh; i++) {
        for (let c = 0; c < 3; c++) {
          const got = out[c * ow * oh + i];
          const want = ref[i * 3 + c];
          if (got !== want) assert.fail(`${w}×${h}→${ow}×${oh}: pixel ${i} channel ${c}: ${got} vs ${want}`);
        }
      }
    }
  });

  it('batches frames into [F, 3, H, W]', () => {
    const frames = [frame(640, 480, (x, y) => [x % 256, y % 256, 7]), frame(480, 640, (x, y) => [y % 256, x % 256, 9])];
    const batch = preprocessBatch(frames, CLIP);
    assert.deepEqual(batch.dims, [2, 3, 336, 336]);
    const per = 3 * 336 * 336;
    for (const [i, f] of frames.entries()) {
      assert.deepEqual(batch.data.subarray(i * per, (i + 1) * per), preprocess(f, CLIP));
    }
    const noCrop = { ...CLIP, doCenterCrop: false };
    assert.throws(
      () => preprocessBatch(frames, noCrop),
      (err: unknown) => err instanceof UsageError && /one size/.test(err.message),
    );
    assert.throws(() => preprocessBatch([], CLIP), UsageError);
  });
});

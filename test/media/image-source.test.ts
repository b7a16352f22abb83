import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import sharp from 'sharp';
import { MediaError } from '../../src/errors.js';
import { imageFrames, readImage } from '../../src/media/image-source.js';
import { tempDir } from './synthetic-video.js';

const W = 5;
const H = 3;
/** Every pixel different: rgb = (10·x, 40·y, 7·(x + y)). */
const PIXELS = Uint8Array.from({ length: W * H * 3 }, (_, i) => {
  const p = Math.floor(i / 3);
  const [x, y] = [p % W, Math.floor(p / W)];
  return [10 * x, 40 * y, 7 * (x + y)][i % 3]!;
});
const raw = (channels: 1 | 3 | 4, data: Uint8Array) => sharp(data, { raw: { width: W, height: H, channels } });

describe('image source', () => {
  let dir: string;
  let remove: () => Promise<void>;
  before(async () => ({ dir, remove } = await tempDir()));
  after(() => remove());

  it('reads PNG and lossless WebP pixel for pixel', async () => {
    for (const [name, encode] of [
      ['a.png', raw(3, PIXELS).png()],
      ['a.webp', raw(3, PIXELS).webp({ lossless: true })],
    ] as const) {
      const file = path.join(dir, name);
      await encode.toFile(file);
      const frame = await readImage(file);
      assert.equal(frame.width, W);
      assert.equal(frame.height, H);
      assert.equal(frame.index, 0);
      assert.equal(frame.timestampS, 0);
      assert.deepEqual([...frame.rgb], [...PIXELS], name);
    }
  });

  it('reads JPEG close to the original, and from bytes', async () => {
    const bytes = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 60, b: 30 } } })
      .jpeg({ quality: 95 })
      .toBuffer();
    const frame = await readImage(bytes);
    assert.equal(frame.rgb.length, 16 * 16 * 3);
    for (const [c, v] of [200, 60, 30].entries()) {
      assert.ok(Math.abs(frame.rgb[c]! - v) <= 3, `channel ${c}: ${frame.rgb[c]}`);
    }
  });

  it('drops alpha, expands grey, applies EXIF orientation', async () => {
    const rgba = Uint8Array.from({ length: W * H * 4 }, (_, i) =>
      i % 4 === 3 ? 0 : PIXELS[Math.floor(i / 4) * 3 + (i % 4)]!,
    );
    await raw(4, rgba).png().toFile(path.join(dir, 'alpha.png'));
    assert.deepEqual([...(await readImage(path.join(dir, 'alpha.png'))).rgb], [...PIXELS], 'colour kept, alpha gone');

    const grey = Uint8Array.from({ length: W * H }, (_, i) => i * 10);
    await raw(1, grey).png().toFile(path.join(dir, 'grey.png'));
    const g = await readImage(path.join(dir, 'grey.png'));
    assert.deepEqual(
      [...g.rgb],
      [...grey].flatMap((v) => [v, v, v]),
    );

    // Orientation 6: the stored 5×3 picture is shown rotated 90° clockwise, 3×5.
    await raw(3, PIXELS).png().withMetadata({ orientation: 6 }).toFile(path.join(dir, 'turned.png'));
    const turned = await readImage(path.join(dir, 'turned.png'));
    assert.equal(turned.width, H);
    assert.equal(turned.height, W);
    const at = (f: typeof turned, x: number, y: number) => [
      ...f.rgb.subarray((y * f.width + x) * 3, (y * f.width + x) * 3 + 3),
    ];
    assert.deepEqual(at(turned, H - 1, 0), [0, 0, 0], 'top-left stored pixel is now top-right');
  });

  it('numbers several images in order', async () => {
    const files = ['x.png', 'y.png', 'z.png'].map((n) => path.join(dir, n));
    for (const [i, f] of files.entries()) {
      await sharp({ create: { width: 2, height: 2, channels: 3, background: { r: i * 100, g: 0, b: 0 } } })
        .png()
        .toFile(f);
    }
    const frames = await lastValueFrom(imageFrames(files).pipe(toArray()));
    assert.deepEqual(
      frames.map((f) => [f.index, f.timestampS, f.rgb[0]]),
      [
        [0, 0, 0],
        [1, 1, 100],
        [2, 2, 200],
      ],
    );
  });

  it('says what is wrong with a bad image', async () => {
    const check = (pattern: RegExp) => (err: unknown) =>
      err instanceof MediaError && pattern.test(err.message) && !!err.hint;
    await assert.rejects(readImage(path.join(dir, 'missing.png')), check(/image file not found: .*missing\.png/));
    await writeFile(path.join(dir, 'empty.png'), '');
    await assert.rejects(readImage(path.join(dir, 'empty.png')), check(/is empty \(0 bytes\)/));
    await writeFile(path.join(dir, 'garbage.jpg'), Buffer.from('this is not an image at all, just text'));
    await assert.rejects(
      readImage(path.join(dir, 'garbage.jpg')),
      check(/cannot read image .*garbage\.jpg: .*unsupported image format/),
    );
    const png = await raw(3, PIXELS).png().toBuffer();
    await writeFile(path.join(dir, 'cut.png'), png.subarray(0, png.length - 20));
    await assert.rejects(readImage(path.join(dir, 'cut.png')), check(/cannot read image .*cut\.png/));
    await assert.rejects(lastValueFrom(imageFrames([path.join(dir, 'missing.png')])), MediaError);
  });
});

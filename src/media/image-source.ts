/** Still images (PNG, JPEG, WebP and whatever else sharp reads) as Frames. */
import { stat } from 'node:fs/promises';
import type { Observable } from 'rxjs';
import { concatMap, from } from 'rxjs';
import sharp from 'sharp';
import { MediaError } from '../errors.js';
import type { Frame } from './frame.js';

/**
 * Decodes an image file or encoded bytes to RGB24: EXIF orientation applied, alpha dropped (as
 * HF's convert_rgb does), grey and CMYK converted to sRGB. Its timestamp is its index.
 */
export async function readImage(input: string | Uint8Array, index = 0): Promise<Frame> {
  const name = typeof input === 'string' ? input : 'image data';
  if (typeof input === 'string') await checkImageFile(input);
  try {
    const { data, info } = await sharp(input)
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels instead of 3`);
    return {
      index,
      timestampS: index,
      width: info.width,
      height: info.height,
      rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    };
  } catch (err) {
    throw new MediaError(
      `cannot read image ${name}: ${(err as Error).message}`,
      'give a PNG, JPEG or WebP image that an image viewer opens',
    );
  }
}

/** Several images in the given order, indices and timestamps 0, 1, 2, … */
export function imageFrames(files: readonly string[]): Observable<Frame> {
  return from(files).pipe(concatMap((file, i) => readImage(file, i)));
}

async function checkImageFile(file: string): Promise<void> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new MediaError(
      err.code === 'ENOENT' ? `image file not found: ${file}` : `cannot read image ${file}: ${err.message}`,
      'check the path',
    );
  });
  if (st.isDirectory())
    throw new MediaError(`${file} is a directory, not an image file`, 'give the path of an image file');
  if (st.size === 0)
    throw new MediaError(`image file ${file} is empty (0 bytes)`, 'whatever wrote it failed: make it again');
}

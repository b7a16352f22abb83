import { closeSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';

export type FloatDtype = 'F32' | 'F16' | 'BF16';

export interface TensorToWrite {
  name: string;
  shape: readonly number[];
  /** Stored dtype (default F32); values are always given as float32. */
  dtype?: FloatDtype;
  /** The values, or a producer of consecutive chunks (so a large tensor never sits in memory whole). */
  data: Float32Array | (() => Iterable<Float32Array>);
}

const ITEM_SIZE: Record<FloatDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/**
 * Writes a safetensors file one tensor at a time, in name order (as the reference implementation
 * does). The file appears under `path` only when complete.
 */
export function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of sorted) {
    if (t.name in header) throw new Error(`duplicate tensor name ${t.name}`);
    const dtype = t.dtype ?? 'F32';
    const bytes = numel(t.shape) * ITEM_SIZE[dtype];
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  const partial = `${path}.partial`;
  const fd = openSync(partial, 'w');
  try {
    writeAll(fd, prefix);
    writeAll(fd, headerBytes);
    for (const t of sorted) {
      let written = 0;
      for (const chunk of typeof t.data === 'function' ? t.data() : [t.data]) {
        writeAll(fd, encode(chunk, t.dtype ?? 'F32'));
        written += chunk.length;
      }
      if (written !== numel(t.shape))
        throw new Error(`tensor ${t.name}: got ${written} values for shape [${t.shape.join(', ')}]`);
    }
    closeSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(partial);
    throw err;
  }
  renameSync(partial, path);
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done);
}

function encode(values: Float32Array, dtype: FloatDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < bits.length; i++) out[i] = float32BitsToBfloat16(bits[i]);
  } else {
    for (let i = 0; i < bits.length; i++) out[i] = float32BitsToFloat16(bits[i]);
  }
  return new Uint8Array(out.buffer);
}

/** Round to nearest even; NaN stays NaN. */
export function float32BitsToBfloat16(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Round to nearest even, overflow to ±Infinity, underflow through subnormals to ±0. */
export function float32BitsToFloat16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const rest = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // a carry into the exponent is the correct rounding
  return sign | r;
}

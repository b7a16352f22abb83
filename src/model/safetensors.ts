import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ModelError } from '../errors.js';
import { isObject, JsonFields, readJsonObject } from './json-file.js';

/** Bytes per element of every dtype the safetensors format defines. */
const ITEM_SIZE: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const READ_CHUNK = 1 << 30;
const DAMAGED_HINT = 'the file is truncated or corrupt: download it again';

export interface TensorInfo {
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  start: number;
  end: number;
}

/** Read access to a checkpoint's tensors; `get` converts F32/F16/BF16 to a fresh Float32Array. */
export interface WeightStore {
  /** The weight files (single file, or the index followed by its shards). */
  readonly files: readonly string[];
  names(): string[];
  has(name: string): boolean;
  shape(name: string): number[];
  dtype(name: string): string;
  get(name: string): Float32Array;
  close(): void;
}

/** Opens `model.safetensors`, or `model.safetensors.index.json` and its shards, in `dir`. */
export function openWeights(dir: string): WeightStore {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return new FileWeights([new SafetensorsFile(single)], [single]);
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (existsSync(indexPath)) return openSharded(indexPath);
  const hasBin = existsSync(join(dir, 'pytorch_model.bin')) || existsSync(join(dir, 'pytorch_model.bin.index.json'));
  throw new ModelError(
    `${dir} has no model.safetensors or model.safetensors.index.json`,
    hasBin
      ? "only safetensors weights are supported: download the checkpoint's safetensors files " +
          'or convert pytorch_model.bin with transformers (save_pretrained(safe_serialization=True))'
      : "download the checkpoint's *.safetensors files (and model.safetensors.index.json when sharded)",
  );
}

function openSharded(indexPath: string): WeightStore {
  const index = new JsonFields(indexPath, readJsonObject(indexPath, ''));
  const map = index.sub('weight_map').obj;
  const shardNames = [...new Set(Object.values(map))];
  if (
    shardNames.length === 0 ||
    !shardNames.every((s) => typeof s === 'string' && !s.includes('/') && !s.includes('\\'))
  ) {
    index.fail('weight_map', 'must map tensor names to shard file names in the same folder');
  }
  const shards: SafetensorsFile[] = [];
  try {
    for (const name of shardNames as string[]) {
      const path = join(dirname(indexPath), name);
      if (!existsSync(path))
        throw new ModelError(`${path} is missing (listed in ${indexPath})`, 'download every shard listed in the index');
      shards.push(new SafetensorsFile(path));
    }
    const byName = new Map(shards.map((s, i) => [shardNames[i] as string, s]));
    for (const [tensor, shard] of Object.entries(map)) {
      if (!byName.get(shard as string)?.tensors.has(tensor)) {
        throw new ModelError(
          `${indexPath} lists ${tensor} in ${shard as string}, which does not contain it`,
          DAMAGED_HINT,
        );
      }
    }
  } catch (err) {
    for (const s of shards) s.close();
    throw err;
  }
  return new FileWeights(shards, [indexPath, ...shards.map((s) => s.path)]);
}

class FileWeights implements WeightStore {
  /** Each tensor's shard and its entry in that shard's header. */
  private readonly owner = new Map<string, { shard: SafetensorsFile; info: TensorInfo }>();

  constructor(
    private readonly shards: SafetensorsFile[],
    readonly files: readonly string[],
  ) {
    for (const shard of shards) {
      for (const [name, info] of shard.tensors) {
        const earlier = this.owner.get(name);
        if (earlier)
          throw new ModelError(`tensor ${name} appears in both ${earlier.shard.path} and ${shard.path}`, DAMAGED_HINT);
        this.owner.set(name, { shard, info });
      }
    }
  }

  names(): string[] {
    return [...this.owner.keys()].sort();
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  private find(name: string): [SafetensorsFile, TensorInfo] {
    const owner = this.owner.get(name);
    if (!owner)
      throw new ModelError(
        `the checkpoint has no tensor ${name}`,
        'is it a complete checkpoint of a supported architecture?',
      );
    return [owner.shard, owner.info];
  }

  shape(name: string): number[] {
    return [...this.find(name)[1].shape];
  }

  dtype(name: string): string {
    return this.find(name)[1].dtype;
  }

  get(name: string): Float32Array {
    const [shard, info] = this.find(name);
    return shard.readFloat32(name, info);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

/** One safetensors file: the header is parsed and checked on open; tensors are read on demand. */
export class SafetensorsFile {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string> = {};
  private fd: number | null;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    try {
      this.parseHeader();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private damaged(problem: string): ModelError {
    return new ModelError(`${this.path} is not a valid safetensors file: ${problem}`, DAMAGED_HINT);
  }

  /** The file descriptor, or an error once the file is closed. */
  private openFd(): number {
    if (this.fd === null) throw new Error(`${this.path} is closed`);
    return this.fd;
  }

  private parseHeader(): void {
    const size = fstatSync(this.openFd()).size;
    if (size < 8) throw this.damaged(`only ${size} bytes`);
    const lenBytes = Buffer.alloc(8);
    this.readAt(lenBytes, 0);
    const headerLen = Number(lenBytes.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size)
      throw this.damaged(`header length ${headerLen} does not fit the file (${size} bytes)`);
    const headerBytes = Buffer.alloc(headerLen);
    this.readAt(headerBytes, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch (err) {
      throw this.damaged(`header is not JSON (${(err as Error).message})`);
    }
    if (!isObject(header)) throw this.damaged('header is not a JSON object');

    const dataStart = 8 + headerLen;
    const dataSize = size - dataStart;
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') {
        if (isObject(entry)) Object.assign(this.metadata, entry);
        continue;
      }
      if (!isObject(entry)) throw this.damaged(`entry ${name} is not an object`);
      const { dtype, shape, data_offsets: offsets } = entry;
      const itemSize = typeof dtype === 'string' ? ITEM_SIZE[dtype] : undefined;
      if (itemSize === undefined) throw this.damaged(`tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
        throw this.damaged(`tensor ${name} has a bad shape`);
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
        throw this.damaged(`tensor ${name} has bad data_offsets`);
      }
      const [begin, end] = offsets as [number, number];
      const bytes = (shape as number[]).reduce((a, b) => a * b, 1) * itemSize;
      if (end - begin !== bytes)
        throw this.damaged(`tensor ${name} spans ${end - begin} bytes, its shape needs ${bytes}`);
      if (end > dataSize)
        throw this.damaged(`tensor ${name} ends at byte ${dataStart + end}, past the end of the file (${size} bytes)`);
      this.tensors.set(name, {
        dtype: dtype as string,
        shape: shape as number[],
        start: dataStart + begin,
        end: dataStart + end,
      });
    }
  }

  private readAt(target: Uint8Array, position: number): void {
    const fd = this.openFd();
    for (let done = 0; done < target.length; ) {
      const n = readSync(fd, target, done, Math.min(READ_CHUNK, target.length - done), position + done);
      if (n === 0) throw this.damaged(`unexpected end of file at byte ${position + done}`);
      done += n;
    }
  }

  readFloat32(name: string, info: TensorInfo): Float32Array {
    if (this.fd === null) throw new Error(`${this.path} is closed`);
    const count = (info.end - info.start) / ITEM_SIZE[info.dtype];
    switch (info.dtype) {
      case 'F32': {
        const out = new Float32Array(count);
        this.readAt(new Uint8Array(out.buffer), info.start);
        return out;
      }
      case 'F16': {
        const half = new Uint16Array(count);
        this.readAt(new Uint8Array(half.buffer), info.start);
        return float16ToFloat32(half);
      }
      case 'BF16': {
        const bits = new Uint32Array(count);
        const half = new Uint16Array(bits.buffer, 2 * count, count);
        this.readAt(new Uint8Array(half.buffer, half.byteOffset, 2 * count), info.start);
        // Widen in place from the back half: element i moves to the top 16 bits of word i.
        for (let i = 0; i < count; i++) bits[i] = half[i] << 16;
        return new Float32Array(bits.buffer);
      }
      default:
        throw new ModelError(
          `${this.path}: tensor ${name} has dtype ${info.dtype}; only F32, F16 and BF16 weights are supported`,
          'use a checkpoint saved in float32, float16 or bfloat16',
        );
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

let f16Table: Float32Array | null = null;

function float16Table(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    f16Table[h] =
      exp === 0
        ? sign * mant * 2 ** -24
        : exp === 31
          ? mant
            ? NaN
            : sign * Infinity
          : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return f16Table;
}

export function float16ToFloat32(half: Uint16Array): Float32Array {
  const table = float16Table();
  const out = new Float32Array(half.length);
  for (let i = 0; i < half.length; i++) out[i] = table[half[i]];
  return out;
}

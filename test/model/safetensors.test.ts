import assert from 'node:assert/strict';
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { openWeights, SafetensorsFile } from '../../src/model/safetensors.js';
import { type FloatDtype, float32BitsToFloat16, writeSafetensors } from '../../src/model/safetensors-writer.js';
import { tempDir } from '../helpers/fixtures.js';

function bitsOf(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0]!;
}

function assertModelError(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ModelError, `expected ModelError, got ${String(err)}`);
    for (const p of parts) assert.ok(err.message.includes(p), `"${err.message}" should mention ${p}`);
    return true;
  });
}

const SPECIAL = Float32Array.of(0, -0, 1, -2.5, 65504, 1e-7, -6e-8, Math.PI, Infinity, -Infinity, 1e6);

describe('safetensors', () => {
  it('round-trips F32 exactly and F16/BF16 within their precision, special values included', () => {
    const dir = tempDir('st');
    const random = Float32Array.from({ length: 1000 }, (_, i) => (Math.sin(i * 12.9898) * 43758.5453) % 8);
    for (const dtype of ['F32', 'F16', 'BF16'] as FloatDtype[]) {
      writeSafetensors(join(dir, `${dtype}.safetensors`), [
        { name: 'random', shape: [10, 100], dtype, data: random },
        { name: 'special', shape: [SPECIAL.length], dtype, data: SPECIAL },
      ]);
      const f = new SafetensorsFile(join(dir, `${dtype}.safetensors`));
      const got = f.readFloat32('random', f.tensors.get('random')!);
      const tol = { F32: 0, F16: 2 ** -11, BF16: 2 ** -8 }[dtype];
      for (let i = 0; i < random.length; i++) {
        // Relative rounding bound, plus F16's subnormal spacing for values near zero.
        assert.ok(
          Math.abs(got[i]! - random[i]!) <= tol * Math.abs(random[i]!) + (dtype === 'F16' ? 2 ** -25 : 0),
          `${dtype} [${i}] ${got[i]} vs ${random[i]}`,
        );
      }
      const special = f.readFloat32('special', f.tensors.get('special')!);
      assert.equal(special[0], 0);
      assert.ok(Object.is(special[1], -0));
      assert.equal(special[2], 1);
      assert.equal(special[3], -2.5);
      assert.equal(special[8], Infinity);
      assert.equal(special[9], -Infinity);
      if (dtype === 'F16') {
        assert.equal(special[4], 65504);
        assert.equal(special[10], Infinity, '1e6 overflows to infinity');
        assert.equal(special[5], 2 ** -24 * 2, '1e-7 rounds to the nearest subnormal');
        assert.equal(special[6], -(2 ** -24));
      }
      f.close();
    }
  });

  it('float16 rounding: ties to even, NaN stays NaN', () => {
    assert.equal(float32BitsToFloat16(bitsOf(1 + 2 ** -11)), 0x3c00, 'tie rounds down to even');
    assert.equal(float32BitsToFloat16(bitsOf(1 + 3 * 2 ** -11)), 0x3c02, 'tie rounds up to even');
    assert.equal(float32BitsToFloat16(bitsOf(2 ** -25)), 0, 'half the smallest subnormal ties to zero');
    assert.equal(float32BitsToFloat16(bitsOf(65520)), 0x7c00, 'rounds up to infinity');
    assert.ok((float32BitsToFloat16(bitsOf(NaN)) & 0x7fff) > 0x7c00);
  });

  it('writes a header transformers can read: sorted names, 8-byte aligned, metadata, chunked data', () => {
    const dir = tempDir('st');
    const path = join(dir, 'm.safetensors');
    writeSafetensors(path, [
      { name: 'b', shape: [3], data: Float32Array.of(1, 2, 3) },
      {
        name: 'a',
        shape: [2, 3],
        dtype: 'BF16',
        data: function* () {
          yield Float32Array.of(1, 2);
          yield Float32Array.of(3, 4, 5, 6);
        },
      },
    ]);
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
    assert.deepEqual(Object.keys(header), ['__metadata__', 'a', 'b']);
    assert.deepEqual(header.__metadata__, { format: 'pt' });
    assert.deepEqual(header.a, { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 12] });
    assert.deepEqual(header.b, { dtype: 'F32', shape: [3], data_offsets: [12, 24] });
    assert.equal(bytes.length, 8 + n + 24);
    const f = new SafetensorsFile(path);
    assert.deepEqual([...f.readFloat32('a', f.tensors.get('a')!)], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual([...f.readFloat32('b', f.tensors.get('b')!)], [1, 2, 3]);
    f.close();
  });

  it('rejects a wrong number of values and leaves no file behind', () => {
    const path = join(tempDir('st'), 'model.safetensors');
    assert.throws(
      () => writeSafetensors(path, [{ name: 'x', shape: [4], data: Float32Array.of(1, 2, 3) }]),
      /got 3 values/,
    );
    assert.equal(existsSync(path), false);
    assert.equal(existsSync(`${path}.partial`), false);
  });

  it('reads sharded checkpoints through the index', () => {
    const dir = tempDir('st');
    writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), [
      { name: 'a.weight', shape: [2], dtype: 'F16', data: Float32Array.of(1, 2) },
    ]);
    writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), [
      { name: 'b.weight', shape: [1, 2], data: Float32Array.of(3, 4) },
    ]);
    const index = {
      metadata: { total_size: 12 },
      weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' },
    };
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    const store = openWeights(dir);
    assert.deepEqual(store.names(), ['a.weight', 'b.weight']);
    assert.deepEqual(store.shape('b.weight'), [1, 2]);
    assert.equal(store.dtype('a.weight'), 'F16');
    assert.deepEqual([...store.get('a.weight')], [1, 2]);
    assert.deepEqual([...store.get('b.weight')], [3, 4]);
    assert.equal(store.files.length, 3);
    assertModelError(() => store.get('c.weight'), 'c.weight');
    store.close();

    index.weight_map['b.weight'] = 'model-00003-of-00002.safetensors';
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    assertModelError(() => openWeights(dir), 'model-00003-of-00002.safetensors', 'missing');
    index.weight_map['b.weight'] = 'model-00001-of-00002.safetensors';
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    assertModelError(() => openWeights(dir), 'b.weight', 'does not contain it');
  });

  it('a truncated or corrupt file is a ModelError naming the file', () => {
    const dir = tempDir('st');
    const path = join(dir, 'model.safetensors');
    writeSafetensors(path, [{ name: 'w', shape: [64, 64], data: new Float32Array(4096).fill(0.5) }]);
    truncateSync(path, 8000);
    assertModelError(() => openWeights(dir), path, 'past the end of the file');

    truncateSync(path, 20);
    assertModelError(() => openWeights(dir), path, 'header length');

    const bytes = Buffer.alloc(24);
    bytes.writeBigUInt64LE(16n);
    bytes.write('{"w": not json }', 8);
    writeFileSync(path, bytes);
    assertModelError(() => openWeights(dir), path, 'not JSON');

    writeFileSync(path, Buffer.alloc(4));
    assertModelError(() => openWeights(dir), path, 'only 4 bytes');
  });

  it('without weights says what to download; pytorch .bin is named as unsupported', () => {
    const dir = tempDir('st');
    assertModelError(() => openWeights(dir), 'model.safetensors');
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    assert.throws(
      () => openWeights(dir),
      (err: ModelError) => /pytorch_model\.bin/.test(err.hint ?? ''),
    );
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createSession, DEFAULT_RUNTIME, tensor } from '../../src/engine/ort-session.js';
import { GraphBuilder } from '../../src/onnx/graph-builder.js';
import { writeModel } from '../../src/onnx/model-writer.js';
import { patchGroupMean, pixelShuffle } from '../../src/onnx/patch-groups.js';
import { tempDir } from '../helpers/fixtures.js';

// 2 units of a 6×6 patch grid, groups of 3×3 (as SmolVLM2-2.2B: 27×27 patches, scale 3), width 2.
const BATCH = 2;
const SIDE = 6;
const S = 3;
const WIDTH = 2;
const T = SIDE / S;

/** Value of unit u, patch (r, c), channel k: distinct for every element. */
const value = (u: number, r: number, c: number, k: number) => u * 1000 + r * 100 + c * 10 + k;

async function run(
  build: (g: GraphBuilder, x: string) => string,
  input: Float32Array,
  dims: number[],
  outShape: string[],
) {
  const g = new GraphBuilder('groups');
  const x = g.input('x', 'float32', dims);
  g.output(build(g, x), 'y', 'float32', outShape);
  const path = join(tempDir('groups'), 'groups.onnx');
  writeModel(g, path);
  const session = await createSession(path, DEFAULT_RUNTIME);
  const out = await session.run({ x: tensor.f32(input, dims) });
  await session.release();
  return { data: Array.from(out.y.data as Float32Array), dims: out.y.dims };
}

describe('patch groups (pixel shuffle and group means)', () => {
  const rows = new Float32Array(BATCH * SIDE * SIDE * WIDTH);
  for (let u = 0; u < BATCH; u++)
    for (let r = 0; r < SIDE; r++)
      for (let c = 0; c < SIDE; c++)
        for (let k = 0; k < WIDTH; k++) rows[((u * SIDE + r) * SIDE + c) * WIDTH + k] = value(u, r, c, k);

  it('pixelShuffle puts patch (hb·s+i, wb·s+j) of token (hb, wb) at columns (i·s+j)·width', async () => {
    const out = await run(
      (g, x) => pixelShuffle(g, x, SIDE, S, WIDTH),
      rows,
      [BATCH, SIDE * SIDE, WIDTH],
      ['b', 'tokens', 'w'],
    );
    assert.deepEqual(out.dims, [BATCH, T * T, S * S * WIDTH]);
    const expected: number[] = [];
    for (let u = 0; u < BATCH; u++)
      for (let hb = 0; hb < T; hb++)
        for (let wb = 0; wb < T; wb++)
          for (let i = 0; i < S; i++)
            for (let j = 0; j < S; j++)
              for (let k = 0; k < WIDTH; k++) expected.push(value(u, hb * S + i, wb * S + j, k));
    assert.deepEqual(out.data, expected);
  });

  it('patchGroupMean averages the s×s patches of each token, with and without a feature axis', async () => {
    const mean = (u: number, hb: number, wb: number, k: number) => {
      let sum = 0;
      for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) sum += value(u, hb * S + i, wb * S + j, k);
      return sum / (S * S);
    };
    const keys = await run(
      (g, x) => patchGroupMean(g, x, SIDE, S, [WIDTH]),
      rows,
      [BATCH, SIDE * SIDE, WIDTH],
      ['b', 'tokens', 'w'],
    );
    assert.deepEqual(keys.dims, [BATCH, T * T, WIDTH]);
    const scalar = rows.filter((_, i) => i % WIDTH === 0);
    const saliency = await run(
      (g, x) => patchGroupMean(g, x, SIDE, S, []),
      scalar,
      [BATCH, SIDE * SIDE],
      ['b', 'tokens'],
    );
    assert.deepEqual(saliency.dims, [BATCH, T * T]);
    for (let u = 0; u < BATCH; u++)
      for (let hb = 0; hb < T; hb++)
        for (let wb = 0; wb < T; wb++) {
          const token = (u * T + hb) * T + wb;
          for (let k = 0; k < WIDTH; k++) assert.ok(Math.abs(keys.data[token * WIDTH + k] - mean(u, hb, wb, k)) < 1e-3);
          assert.ok(Math.abs(saliency.data[token] - mean(u, hb, wb, 0)) < 1e-3);
        }
  });
});

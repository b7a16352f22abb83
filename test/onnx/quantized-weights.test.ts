import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createSession, DEFAULT_RUNTIME, tensor } from '../../src/engine/ort-session.js';
import { prepareModel } from '../../src/engine/prepare-model.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import type { VisionConfig } from '../../src/model/vlm-config.js';
import { defaultGraphDir } from '../../src/onnx/convert.js';
import { GraphBuilder } from '../../src/onnx/graph-builder.js';
import { WeightLoader, type WeightReader } from '../../src/onnx/layers.js';
import { writeModel } from '../../src/onnx/model-writer.js';
import { dequantizeBlocks, quantizeBlocks, quantizeColumnsInt8 } from '../../src/onnx/quantize.js';
import { VISION_IO } from '../../src/onnx/vision-encoder.js';
import { tempDir, tinyCheckpoint } from '../helpers/fixtures.js';
import { maxRelativeError } from '../helpers/numeric.js';

/** Deterministic values in [−1, 1) with a few outliers, like trained weights. */
function values(count: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: count }, (_, i) => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return ((s / 2 ** 31) * 2 - 1) * (i % 97 === 0 ? 4 : 1);
  });
}

function matmulT(x: Float32Array, w: Float32Array, m: number, n: number, k: number): Float32Array {
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let t = 0; t < k; t++) acc += x[i * k + t] * w[j * k + t];
      y[i * n + j] = acc;
    }
  return y;
}

describe('block-quantised weights (MatMulNBits)', () => {
  for (const [bits, k, level] of [
    [4, 96, 0],
    [4, 80, 0],
    [8, 96, 0],
    [8, 80, 0],
    [4, 96, 4],
    [8, 80, 4],
  ] as const) {
    const what = level ? 'within int8 activation rounding of' : 'equals';
    const padded = k % 32 ? ' (last block padded)' : '';
    it(`int${bits}, K ${k}${padded}, accuracy level ${level}: the graph ${what} dequantise-then-MatMul`, async () => {
      const n = 24;
      const m = 5;
      const weight = values(n * k, bits * 1000 + k);
      const reader: WeightReader = { has: () => true, shape: () => [n, k], get: () => weight };
      const g = new GraphBuilder('q');
      const w = new WeightLoader(g, reader, bits === 8 ? 'int8' : 'int4', 32, level);
      const x = g.input('x', 'float32', [1, m, k]);
      g.output(w.matmulT(x, 'proj.weight'), 'y', 'float32', [1, m, n]);
      const path = join(tempDir('nbits'), 'q.onnx');
      writeModel(g, path);
      const session = await createSession(path, DEFAULT_RUNTIME);
      const input = values(m * k, 7);
      const y = (await session.run({ x: tensor.f32(input, [1, m, k]) })).y.data as Float32Array;
      await session.release();

      const q = quantizeBlocks(weight, n, k, bits, 32);
      const reference = matmulT(input, dequantizeBlocks(q), m, n, k);
      const tolerance = level ? 2e-2 : 1e-5;
      assert.ok(maxRelativeError(y, reference) < tolerance, `graph vs reference ${maxRelativeError(y, reference)}`);
      // And the quantisation itself is as fine as its bits allow.
      const exact = matmulT(input, weight, m, n, k);
      const bound = bits === 8 ? 0.02 : 0.2;
      assert.ok(maxRelativeError(reference, exact) < bound, `int${bits} error ${maxRelativeError(reference, exact)}`);
    });
  }

  it('a quantised model shrinks its decoder weights and keeps the logits close', async () => {
    const ckpt = tinyCheckpoint(4);
    const run = async (dtype: 'fp32' | 'int8' | 'int4') => {
      const p = await prepareModel(ckpt, { dtype, graphDir: tempDir(dtype) });
      const runner = await VlmRunner.open(p.graphDir, p.manifest, DEFAULT_RUNTIME);
      const rows = 12;
      const hidden = await runner.embed(Array.from({ length: rows }, (_, i) => 5 + i));
      const { logits } = await runner.prefill(
        hidden,
        Array.from({ length: rows }, (_, i) => i),
        1,
      );
      await runner.release();
      p.checkpoint.weights.close();
      const decoderBytes = p.manifest.segments.reduce((a, s) => a + p.manifest.weightBytes[s.file], 0);
      return { logits, decoderBytes, manifestDtype: p.manifest.dtype };
    };
    const full = await run('fp32');
    for (const dtype of ['int8', 'int4'] as const) {
      const q = await run(dtype);
      assert.equal(q.manifestDtype, dtype);
      assert.ok(q.decoderBytes < full.decoderBytes, `${dtype} ${q.decoderBytes} B vs fp32 ${full.decoderBytes} B`);
      const err = maxRelativeError(q.logits, full.logits);
      assert.ok(err > 0 && err < (dtype === 'int8' ? 0.05 : 0.25), `${dtype} logits relative error ${err}`);
    }
  });
});

describe('quantisation block size', () => {
  it('a larger block stores fewer scales, is recorded in the manifest and keys the graph cache', async () => {
    const ckpt = tinyCheckpoint(4);
    const bytes = async (quantBlock: number) => {
      const p = await prepareModel(ckpt, { dtype: 'int4', quantBlock, graphDir: tempDir(`q${quantBlock}`) });
      p.checkpoint.weights.close();
      assert.equal(p.manifest.quantBlock, quantBlock);
      return p.manifest.segments.reduce((a, s) => a + p.manifest.weightBytes[s.file], 0);
    };
    assert.ok((await bytes(64)) < (await bytes(32)));
    assert.match(defaultGraphDir('/models/x', 'int4', [2], 'int8', 64), /int4-q64-b2$/);
    assert.match(defaultGraphDir('/models/x', 'fp32', [2], 'fp32', 64), /fp32-b2$/);
    await assert.rejects(
      prepareModel(ckpt, { dtype: 'int4', quantBlock: 48, graphDir: tempDir('q48') }),
      /block size 48/,
    );
  });
});

describe('int8 vision graphs (DynamicQuantizeMatMul)', () => {
  it('the graph is the per-channel int8 weights times the activations within their int8 rounding', async () => {
    const [n, k, m] = [40, 72, 9];
    const weight = values(n * k, 31);
    const reader: WeightReader = { has: () => true, shape: () => [n, k], get: () => weight };
    const g = new GraphBuilder('dq');
    const w = new WeightLoader(g, reader, 'int8-dynamic');
    const x = g.input('x', 'float32', [m, k]);
    g.output(w.matmulT(x, 'proj.weight'), 'y', 'float32', [m, n]);
    const path = join(tempDir('dq'), 'dq.onnx');
    writeModel(g, path);
    const session = await createSession(path, DEFAULT_RUNTIME);
    const input = values(m * k, 5);
    const y = (await session.run({ x: tensor.f32(input, [m, k]) })).y.data as Float32Array;
    await session.release();

    const { codes, scales } = quantizeColumnsInt8(weight, n, k);
    const dequantized = Float32Array.from(
      weight,
      (_, i) => codes[(i % k) * n + Math.floor(i / k)] * scales[Math.floor(i / k)],
    );
    assert.ok(maxRelativeError(dequantized, weight) < 0.01, 'int8 weights within half a step of 1/127');
    const exact = matmulT(input, weight, m, n, k);
    assert.ok(maxRelativeError(y, matmulT(input, dequantized, m, n, k)) < 0.02);
    assert.ok(maxRelativeError(y, exact) < 0.03, `graph vs float ${maxRelativeError(y, exact)}`);
  });

  it('--dtype int8 builds int8 vision graphs on the CPU whose features stay close to fp32', async () => {
    const ckpt = tinyCheckpoint(4);
    const features = async (dtype: 'fp32' | 'int8', visionDtype?: 'fp16') => {
      const p = await prepareModel(ckpt, { dtype, visionDtype, graphDir: tempDir(`v-${dtype}-${visionDtype}`) });
      const runner = await VlmRunner.open(p.graphDir, p.manifest, DEFAULT_RUNTIME);
      const vision = p.checkpoint.config.vision as VisionConfig;
      const side = vision.imageSize;
      const pixels = values(3 * side * side, 9).map((v) => v * 0.9);
      const grid = side / vision.patchSize;
      const out = await runner.encode({
        units: 1,
        perUnit: { [VISION_IO.pixels]: { type: 'float32', data: pixels, dims: [1, 3, side, side] } },
        shared: {},
        gridRows: grid,
        gridCols: grid,
        batch: 1,
      });
      await runner.release();
      p.checkpoint.weights.close();
      return {
        features: out.features,
        visionDtype: p.manifest.visionDtype,
        bytes: p.manifest.weightBytes['vision.onnx'],
      };
    };
    const full = await features('fp32');
    const q = await features('int8');
    assert.equal(full.visionDtype, 'fp32');
    assert.equal(q.visionDtype, 'int8');
    assert.ok(q.bytes < full.bytes, `int8 vision ${q.bytes} B vs fp32 ${full.bytes} B`);
    const err = maxRelativeError(q.features, full.features);
    assert.ok(err > 0 && err < 0.1, `features relative error ${err}`);
    assert.equal((await features('int8', 'fp16')).visionDtype, 'fp16');
  });
});

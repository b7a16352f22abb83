import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { SegmentKvCache } from '../../src/engine/kv-cache.js';
import { createSession, DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { prepareModel } from '../../src/engine/prepare-model.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import { SEGMENT_IO } from '../../src/onnx/llm-decoder.js';
import { tempDir, tinyCheckpoint } from '../helpers/fixtures.js';

describe('KV cache', () => {
  it('a decode step appends its row to our buffer and touches nothing else', async () => {
    const prepared = await prepareModel(tinyCheckpoint(3), { graphDir: tempDir('graphs'), boundaries: [2] });
    const runner = await VlmRunner.open(prepared.graphDir, prepared.manifest, DEFAULT_RUNTIME);
    const d = prepared.manifest.config.text.hiddenSize;
    const rows = 10;
    await runner.prefill(
      new Float32Array(rows * d).fill(0.1),
      Array.from({ length: rows }, (_, i) => i),
      4,
    );
    // The caches are created by prefill; reach them through the public byte counts and the tensors.
    const caches = (runner.decoder as unknown as { caches: SegmentKvCache[] }).caches;
    const cache = caches[1];
    const keys = cache.keys[0].data as Float32Array;
    const secondHead = cache.capacity * cache.headDim;
    const sentinelAt = (cache.capacity - 1) * cache.headDim;
    keys[sentinelAt] = 12345;
    const before = keys.slice(0, rows * cache.headDim);
    await runner.decode(5, rows);
    assert.equal(cache.length, rows + 1);
    assert.notEqual(keys[rows * cache.headDim], 0, 'the new key row of KV head 0 was written after the held rows');
    assert.notEqual(keys[secondHead + rows * cache.headDim], 0, 'and that of KV head 1 after its own');
    assert.equal(keys[sentinelAt], 12345, 'capacity beyond the new row is left alone');
    assert.deepEqual(keys.slice(0, rows * cache.headDim), before, 'earlier rows are untouched');
    await runner.release();
    prepared.checkpoint.weights.close();
  });

  it("a decode step's outputs hold its one row, whatever the cache's capacity", async () => {
    // Outputs are copied into new JavaScript buffers after every run; a cache among them made decode grow
    // with the context (issue 15).
    const prepared = await prepareModel(tinyCheckpoint(3), { graphDir: tempDir('graphs'), boundaries: [2] });
    const { text } = prepared.manifest.config;
    const segment = prepared.manifest.segments[0];
    const session = await createSession(join(prepared.graphDir, segment.file), DEFAULT_RUNTIME);
    const outputSizes = async (capacity: number) => {
      const held = 5;
      const feeds: Record<string, ort.Tensor> = {
        [SEGMENT_IO.hidden]: new ort.Tensor('float32', new Float32Array(text.hiddenSize).fill(0.1), [
          1,
          1,
          text.hiddenSize,
        ]),
        [SEGMENT_IO.positions]: new ort.Tensor('int64', BigInt64Array.of(BigInt(held)), [1, 1]),
        [SEGMENT_IO.seqlensK]: new ort.Tensor('int32', Int32Array.of(held), [1]),
        [SEGMENT_IO.totalLength]: new ort.Tensor('int32', Int32Array.of(held + 1), []),
      };
      const cache = new SegmentKvCache([0, 1], text.numKvHeads, text.headDim, capacity);
      cache.layers.forEach((layer, j) => {
        feeds[SEGMENT_IO.pastKey(layer)] = cache.keys[j];
        feeds[SEGMENT_IO.pastValue(layer)] = cache.values[j];
      });
      const out = await session.run(feeds);
      return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, t.size]));
    };
    const small = await outputSizes(8);
    assert.deepEqual(await outputSizes(4096), small);
    assert.equal(small[SEGMENT_IO.newKey(0)], text.numKvHeads * text.headDim);
    await session.release();
    prepared.checkpoint.weights.close();
  });

  it('append writes each KV head after the rows held, and refuses rows past the capacity', () => {
    const cache = new SegmentKvCache([7], 2, 2, 3);
    cache.append([Float32Array.of(1, 2, 3, 4)], [Float32Array.of(5, 6, 7, 8)], 1);
    cache.append([Float32Array.of(9, 9, 8, 8, 7, 7, 6, 6)], [Float32Array.of(0, 0, 0, 0, 0, 0, 0, 0)], 2);
    // [1, kvHeads 2, capacity 3, headDim 2]: head 0's three rows, then head 1's.
    assert.deepEqual(Array.from(cache.keys[0].data as Float32Array), [1, 2, 9, 9, 8, 8, 3, 4, 7, 7, 6, 6]);
    assert.deepEqual(Array.from(cache.values[0].data as Float32Array), [5, 6, 0, 0, 0, 0, 7, 8, 0, 0, 0, 0]);
    assert.equal(cache.length, 3);
    assert.throws(() => cache.append([new Float32Array(4)], [new Float32Array(4)], 1), /cannot take 1 more after 3/);
  });
});

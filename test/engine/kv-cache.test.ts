import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { prepareModel } from '../../src/engine/prepare-model.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import { tempDir, tinyCheckpoint } from '../helpers/fixtures.js';

describe('KV cache', () => {
  it('a decode step appends in place: the new row lands in our buffer and nothing beyond it is touched', async () => {
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
    const caches = (
      runner.decoder as unknown as {
        caches: { keys: { data: Float32Array }[]; capacity: number; headDim: number; length: number }[];
      }
    ).caches;
    const cache = caches[1];
    const keys = cache.keys[0].data;
    const sentinelAt = (cache.capacity - 1) * cache.headDim;
    keys[sentinelAt] = 12345;
    const before = keys.slice(0, rows * cache.headDim);
    await runner.decode(5, rows);
    assert.equal(cache.length, rows + 1);
    assert.notEqual(keys[rows * cache.headDim], 0, 'the new key row was written into the same buffer');
    assert.equal(keys[sentinelAt], 12345, 'a copying kernel would have cleared the rest of the buffer');
    assert.deepEqual(keys.slice(0, rows * cache.headDim), before, 'earlier rows are untouched');
    await runner.release();
    prepared.checkpoint.weights.close();
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prepareModel } from '../../src/engine/prepare-model.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import { tempDir, tinyCheckpoint } from '../helpers/fixtures.js';
import { maxRelativeError } from '../helpers/numeric.js';

describe('sessions without pre-packed weights (what a one-shot sieve ask opens)', () => {
  it('compute the prefill and decode logits that pre-packed sessions do', async () => {
    const prepared = await prepareModel(tinyCheckpoint(4), { graphDir: tempDir('graphs'), boundaries: [2] });
    const d = prepared.manifest.config.text.hiddenSize;
    const rows = 12;
    const hidden = new Float32Array(rows * d).map((_, i) => Math.sin(i) * 0.1);
    const positions = Array.from({ length: rows }, (_, i) => i);
    const logits = async (prepackWeights: boolean) => {
      const runtime = { ep: 'cpu' as const, threads: 0, prepackWeights };
      const runner = await VlmRunner.open(prepared.graphDir, prepared.manifest, runtime);
      const prefill = await runner.prefill(hidden, positions, 2);
      const decode = await runner.decode(3, rows);
      await runner.release();
      return { prefill: prefill.logits, decode };
    };
    const [packed, mapped] = [await logits(true), await logits(false)];
    assert.ok(maxRelativeError(mapped.prefill, packed.prefill) < 1e-5);
    assert.ok(maxRelativeError(mapped.decode, packed.decode) < 1e-5);
    prepared.checkpoint.weights.close();
  });
});

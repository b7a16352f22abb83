import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { prepareModel } from '../../src/engine/prepare-model.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import { tempDir, tinyCheckpoint } from '../helpers/fixtures.js';
import { maxRelativeError } from '../helpers/numeric.js';

describe('--dtype fp16 graphs', () => {
  it('halve the weight files and stay within fp16 rounding of the fp32 logits', async () => {
    const ckpt = tinyCheckpoint(4);
    const logitsOf = async (dtype: 'fp32' | 'fp16') => {
      const p = await prepareModel(ckpt, { dtype, graphDir: tempDir(dtype) });
      const runner = await VlmRunner.open(p.graphDir, p.manifest, DEFAULT_RUNTIME);
      const d = p.manifest.config.text.hiddenSize;
      const rows = 12;
      const hidden = await runner.embed(Array.from({ length: rows }, (_, i) => 5 + i));
      const { logits } = await runner.prefill(
        hidden,
        Array.from({ length: rows }, (_, i) => i),
        1,
      );
      await runner.release();
      p.checkpoint.weights.close();
      const bytes = Object.values(p.manifest.weightBytes).reduce((a, b) => a + b, 0);
      assert.equal(hidden.length, rows * d);
      return { logits, bytes };
    };
    const full = await logitsOf('fp32');
    const half = await logitsOf('fp16');
    // Page alignment and the fp32 rotary tables weigh a lot in a model this small; real checkpoints
    // come out at about half.
    assert.ok(half.bytes < 0.8 * full.bytes, `fp16 ${half.bytes} B vs fp32 ${full.bytes} B`);
    const err = maxRelativeError(half.logits, full.logits);
    assert.ok(err > 0 && err < 5e-3, `relative error ${err}`);
  });
});

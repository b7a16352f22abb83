import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inverseFrequencies, rotaryTables } from '../../src/onnx/llm-decoder.js';

describe('rotary scaling (rope_scaling)', () => {
  it('linear: position 2p with factor 2 turns exactly as position p unscaled', () => {
    const plain = rotaryTables(16, 10000, 64);
    const scaled = rotaryTables(16, 10000, 128, { type: 'linear', factor: 2 });
    for (let p = 0; p < 64; p++) {
      assert.deepEqual(scaled.cos.subarray(2 * p * 8, 2 * p * 8 + 8), plain.cos.subarray(p * 8, p * 8 + 8));
      assert.deepEqual(scaled.sin.subarray(2 * p * 8, 2 * p * 8 + 8), plain.sin.subarray(p * 8, p * 8 + 8));
    }
  });

  it('dynamic: the same tables as plain RoPE within max_position_embeddings', () => {
    assert.deepEqual(rotaryTables(16, 10000, 256, { type: 'dynamic', factor: 4 }), rotaryTables(16, 10000, 256));
  });

  it('llama3 (Llama 3.1 settings): high frequencies kept, low ones divided by the factor, between smoothed', () => {
    const scaling = {
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    } as const;
    const plain = inverseFrequencies(128, 500000);
    const scaled = inverseFrequencies(128, 500000, scaling);
    let kept = 0;
    let divided = 0;
    let smoothed = 0;
    plain.forEach((f, i) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < 8192 / 4) {
        assert.equal(scaled[i], f);
        kept++;
      } else if (wavelen > 8192) {
        assert.equal(scaled[i], Math.fround(f / 8));
        divided++;
      } else {
        assert.ok(scaled[i] < f && scaled[i] > f / 8, `pair ${i} lies between f/8 and f`);
        smoothed++;
      }
    });
    assert.ok(kept > 0 && divided > 0 && smoothed > 0, `${kept} kept, ${smoothed} smoothed, ${divided} divided`);
    for (let i = 1; i < scaled.length; i++) assert.ok(scaled[i] < scaled[i - 1], 'frequencies still decrease');
  });
});

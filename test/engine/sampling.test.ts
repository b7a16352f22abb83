import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { argmax, TokenSampler } from '../../src/engine/sampling.js';

const logits = Float32Array.from([0.1, 2.0, 1.9, -1, 2.0, 0.5]);

describe('token sampling', () => {
  it('greedy takes the largest logit, ties to the lowest id', () => {
    assert.equal(argmax(logits), 1);
    assert.equal(new TokenSampler({ temperature: 0, topP: 1, seed: 3 }).next(logits), 1);
  });

  it('is reproducible by seed and varies across seeds', () => {
    const draw = (seed: number) => {
      const s = new TokenSampler({ temperature: 1.5, topP: 1, seed });
      return Array.from({ length: 40 }, () => s.next(logits));
    };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
    assert.ok(new Set(draw(7)).size > 2, 'temperature spreads the choice');
  });

  it('top-p keeps only the smallest set of tokens reaching the mass', () => {
    const s = new TokenSampler({ temperature: 1, topP: 0.5, seed: 1 });
    const seen = new Set(Array.from({ length: 200 }, () => s.next(logits)));
    assert.ok(
      [...seen].every((t) => t === 1 || t === 4),
      `only the two top tokens: ${[...seen]}`,
    );
  });
});

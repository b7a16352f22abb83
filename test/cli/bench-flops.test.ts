import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchPositions, checkDecodeGrowth, prefillFlops } from '../../src/cli/bench-command.js';
import { SieveError } from '../../src/errors.js';
import type { TextConfig } from '../../src/model/vlm-config.js';

describe('sieve bench llm arithmetic', () => {
  const text = {
    hiddenSize: 4,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 2,
    intermediateSize: 8,
    numLayers: 1,
    vocabSize: 10,
  } as TextConfig;

  it('counts QKᵀ and PV: 4·H·hd FLOPs per query–key pair, s(s+1)/2 pairs when causal', () => {
    const s = 3;
    const projections = 2 * s * (2 * 4 * (2 * 2) + 2 * 4 * (1 * 2)); // q, o, then k, v
    const mlp = 2 * s * (3 * 4 * 8);
    const attention = 4 * 2 * 2 * 6; // 6 causal pairs
    const head = 2 * 4 * 10;
    assert.equal(prefillFlops(text, s), projections + mlp + attention + head);
  });

  it('sizes the random model to the longest context asked, plus the decode steps', () => {
    assert.equal(benchPositions(1500, [500, 2000, 6000], 16), 6018);
    assert.equal(benchPositions(8000, [500], 4), 8006);
  });

  it('fails when decode at the longest context takes more than the bound × the shortest', () => {
    const at = (context: number, msPerToken: number, cpuMsPerToken = msPerToken) => ({
      context,
      msPerToken,
      cpuMsPerToken,
    });
    checkDecodeGrowth([at(500, 70), at(2000, 75), at(4000, 83)], 1.2);
    assert.throws(
      () => checkDecodeGrowth([at(500, 73.7), at(2000, 92.6), at(4000, 139.8, 80)], 1.2),
      (err: unknown) =>
        err instanceof SieveError &&
        /decode at 4000 tokens of context took ×1\.90 the time at 500, above the bound ×1\.2/.test(err.message) &&
        /CPU-time ratio \(×1\.09\)/.test(err.hint ?? ''),
    );
  });
});

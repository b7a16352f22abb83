import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { OrtPairwise } from '../../src/engine/pairwise-kernel.js';
import { type PreparedModel, prepareModel } from '../../src/engine/prepare-model.js';
import { buildPrompt } from '../../src/engine/prompt.js';
import { GREEDY } from '../../src/engine/sampling.js';
import { runVisualQuery, type VisualQuery } from '../../src/engine/visual-query.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import { createMethod } from '../../src/prune/registry.js';
import { llavaConfig, llavaVision, tempDir, tinyCheckpoint } from '../helpers/fixtures.js';

describe('pruned queries through the engine', () => {
  let prepared: PreparedModel;
  let runner: VlmRunner;
  let query: VisualQuery;
  const frames = 4;
  const pairwise = new OrtPairwise();

  before(async () => {
    prepared = await prepareModel(tinyCheckpoint(5), { graphDir: tempDir('graphs') });
    runner = await VlmRunner.open(prepared.graphDir, prepared.manifest, DEFAULT_RUNTIME);
    const { tokenizer, chatTemplate } = prepared.checkpoint;
    const config = llavaConfig(prepared.checkpoint.config);
    const prompt = buildPrompt(
      tokenizer,
      chatTemplate,
      config.imageTokenId,
      config.tokensPerImage,
      Array.from({ length: frames }, (_, i) => ({ timestampS: i })),
      'what colour is the square ?',
    );
    const size = config.vision.imageSize;
    let s = 1;
    const pixels = Float32Array.from({ length: frames * 3 * size * size }, () => {
      s = (s * 16807) % 2147483647;
      return (s / 2147483647) * 2 - 1;
    });
    query = {
      vision: llavaVision(pixels, frames, config),
      frames,
      tokensPerFrame: config.tokensPerImage,
      layout: prompt.layout,
      generation: { maxNewTokens: 4, sampling: GREEDY, eosTokenIds: [] },
    };
  });
  after(async () => {
    await runner.release();
    prepared.checkpoint.weights.close();
  });

  const methodFor = (name: string, budget: number) =>
    createMethod(name, {
      budget,
      frames,
      tokensPerFrame: llavaConfig(prepared.manifest.config).tokensPerImage,
      numLayers: prepared.manifest.config.text.numLayers,
      seed: 0,
    });

  it('method none gives exactly the unpruned answer and token counts', async () => {
    const plain = await runVisualQuery(runner, query);
    const none = await runVisualQuery(runner, query, methodFor('none', 1), pairwise);
    assert.deepEqual(none.tokens, plain.tokens);
    assert.deepEqual(none.segmentRows, plain.segmentRows);
    assert.equal(none.visualTokens.layerAveraged, frames * 16);
  });

  for (const [name, budget] of [
    ['random', 0.25],
    ['pool', 0.25],
    ['gprune', 0.25],
    ['divprune', 0.25],
    ['dart', 0.25],
    ['visionzip', 0.25],
    ['fastv', 0.75],
    ['vitcop', 0.333],
  ] as const) {
    const title = `${name} at ${budget}: the LLM sees what the method planned, every frame keeps a token, KV shrinks`;
    it(title, async () => {
      const method = methodFor(name, budget);
      const planned = method.plannedTokensPerLayer();
      const r = await runVisualQuery(runner, query, method, pairwise);
      const L = prepared.manifest.config.text.numLayers;
      assert.equal(
        r.visualTokens.layerAveraged,
        planned.reduce((a, b) => a + b, 0) / L,
        'layer-averaged tokens follow the plan',
      );
      assert.equal(r.visualTokens.input, planned[0]);
      // ViTCoP's Stage III keeps the smallest-κ tokens globally over frames (methods.md §1), so a
      // frame may end empty.
      if (name !== 'vitcop')
        assert.ok(
          r.visualTokens.keptPerFrame.every((k) => k.length >= 1),
          'no frame disappears',
        );
      assert.ok(r.kvBytes.used < (await runVisualQuery(runner, query)).kvBytes.used, 'the KV caches hold fewer tokens');
      assert.equal(r.tokens.length, 4);
      assert.ok(r.timings.pruneMs >= 0);
    });
  }
});

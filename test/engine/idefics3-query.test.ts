import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { OrtPairwise } from '../../src/engine/pairwise-kernel.js';
import { type PreparedModel, prepareModel } from '../../src/engine/prepare-model.js';
import { GREEDY } from '../../src/engine/sampling.js';
import { runVisualQuery, type VisualQuery } from '../../src/engine/visual-query.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import type { Frame } from '../../src/media/frame.js';
import { createMethod } from '../../src/prune/registry.js';
import { tempDir } from '../helpers/fixtures.js';
import { tinyIdefics3Checkpoint } from '../helpers/idefics3-checkpoint.js';

const QUESTION = 'what colour is the square ?';
const TIMES = [0.4, 1.1, 1.9, 2.6];
const N = 16;

/** Frames of different sizes and content, so every unit's saliency differs. */
function frames(): Frame[] {
  let s = 7;
  return TIMES.map((timestampS, index) => {
    const width = 40 + 8 * index;
    const height = 30 + 4 * index;
    const rgb = Uint8Array.from({ length: width * height * 3 }, () => {
      s = (s * 16807) % 2147483647;
      return s % 256;
    });
    return { index, timestampS, width, height, rgb };
  });
}

describe('SmolVLM2 family: prompt layout and pruning through the engine', () => {
  let prepared: PreparedModel;
  let runner: VlmRunner;
  let query: VisualQuery;
  const pairwise = new OrtPairwise();

  before(async () => {
    prepared = await prepareModel(tinyIdefics3Checkpoint(3), { graphDir: tempDir('graphs') });
    runner = await VlmRunner.open(prepared.graphDir, prepared.manifest, DEFAULT_RUNTIME);
    const { family } = prepared.checkpoint;
    const vision = await family.prepare(frames());
    query = {
      vision,
      frames: vision.units,
      tokensPerFrame: vision.gridRows * vision.gridCols,
      layout: family.layout(frames(), family.plan(TIMES.length), QUESTION),
      generation: { maxNewTokens: 3, sampling: GREEDY, eosTokenIds: [] },
    };
  });
  after(async () => {
    await runner.release();
    prepared.checkpoint.weights.close();
  });

  it("lays the prompt out as the checkpoint's chat template with transformers' video expansion", () => {
    const { chatTemplate, tokenizer } = prepared.checkpoint;
    const rendered = chatTemplate.renderChat(
      [{ role: 'user', content: [{ type: 'video' }, { type: 'text', text: QUESTION }] }],
      { addGenerationPrompt: true },
    );
    assert.equal(rendered, `<|im_start|>User: <video>${QUESTION}<end_of_utterance>\nAssistant:`);
    const frame = (t: string) =>
      `\nFrame from ${t}:<fake_token_around_image><global-img>${'<image>'.repeat(N)}<fake_token_around_image>`;
    const video =
      'You are provided the following series of four frames from a 0:00:03 [H:MM:SS] video.\n' +
      ['00:00', '00:01', '00:01', '00:02'].map(frame).join('') +
      '\n\n';
    const layout = query.layout;
    assert.deepEqual(layout.ids, tokenizer.encode(rendered.replace('<video>', video)));
    const image = tokenizer.tokenToId('<image>');
    assert.deepEqual(
      layout.visualRows,
      layout.ids.flatMap((id, row) => (id === image ? [row] : [])),
    );
    assert.equal(layout.visualRows.length, TIMES.length * N);
    assert.deepEqual(
      layout.positions,
      layout.ids.map((_, i) => i),
    );
  });

  it('refuses a question with an image placeholder in it', async () => {
    const { rejectPlaceholders } = await import('../../src/engine/prompt.js');
    assert.throws(() => rejectPlaceholders(prepared.checkpoint, 'is <global-img> red ?'), /<global-img>/);
  });

  it('encoder-side selection keeps the tokens with the most attention the vision graph computed', async () => {
    const encoded = await runner.encode(query.vision ?? assert.fail('no vision input'));
    assert.equal(encoded.tokens, N);
    const method = createMethod(
      'visionzip',
      { budget: 0.25, frames: TIMES.length, tokensPerFrame: N, numLayers: 4, seed: 0 },
      { contextual: 0 },
    );
    const answer = await runVisualQuery(runner, query, method, pairwise);
    const expected = TIMES.map((_, f) => {
      const scores = Array.from(encoded.saliency.subarray(f * N, (f + 1) * N));
      const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
      return order.slice(0, N / 4).sort((a, b) => a - b);
    });
    assert.deepEqual(answer.visualTokens.keptPerFrame, expected);
    assert.ok(
      expected.some((kept, f) => f > 0 && kept.join() !== expected[0].join()),
      'frames differ',
    );
  });
});

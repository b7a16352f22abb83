import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { VlmPipeline } from '../../src/engine/answer-pipeline.js';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { OrtPairwise } from '../../src/engine/pairwise-kernel.js';
import { type PreparedModel, prepareModel } from '../../src/engine/prepare-model.js';
import { GREEDY } from '../../src/engine/sampling.js';
import { runVisualQuery } from '../../src/engine/visual-query.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import { UsageError } from '../../src/errors.js';
import { maxUnitAttentionBytes, unitAttentionBytes } from '../../src/family/qwen2vl-family.js';
import type { Frame } from '../../src/media/frame.js';
import { keptSize } from '../../src/media/frame-plan.js';
import { videoFrames } from '../../src/media/sampler.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { inputFrameQuotas, roundHalfEven } from '../../src/prune/budget.js';
import { createMethod } from '../../src/prune/registry.js';
import { tempDir, testVideo, tinyQwen2VlCheckpoint } from '../helpers/fixtures.js';

const QUESTION = 'what colour is the square ?';
const ROWS = 6;
const COLS = 8;
const GRID = ROWS * COLS;

describe('Qwen2-VL through the engine on decoded video frames', () => {
  let dir: string;
  let prepared: PreparedModel;
  let runner: VlmRunner;
  let frames: Frame[];
  const pairwise = new OrtPairwise();

  before(async () => {
    dir = tinyQwen2VlCheckpoint(3);
    prepared = await prepareModel(dir, { graphDir: tempDir('graphs') });
    runner = await VlmRunner.open(prepared.graphDir, prepared.manifest, DEFAULT_RUNTIME);
    const video = await testVideo();
    const fit = prepared.checkpoint.family.decodeFit;
    frames = await lastValueFrom(
      videoFrames(video, { timestamps: [0.25, 0.75, 1.25, 1.75, 2.25, 2.75] }, { fit }).pipe(toArray()),
    );
  });
  after(async () => {
    await runner.release();
    prepared.checkpoint.weights.close();
  });

  it('decodes frames at their smart-resized size (max_pixels 64·48), never larger than the source', () => {
    assert.deepEqual(
      frames.map((f) => [f.width, f.height]),
      frames.map(() => [64, 48]),
    );
    const fit = prepared.checkpoint.family.decodeFit;
    assert.deepEqual(keptSize(1920, 1080, fit), { width: 72, height: 40 });
    assert.equal(keptSize(40, 32, fit), undefined, 'already within the budget: decoded as it is');
    assert.equal(keptSize(6, 100, fit), undefined, 'too small for the processor: left to its error');
  });

  it("lays a clip out as Qwen2-VL's chat template and processor do: one video pad per token, 3-D positions", () => {
    const { family, tokenizer } = prepared.checkpoint;
    const plan = { units: 3, gridRows: ROWS, gridCols: COLS };
    const layout = family.layout(frames, plan, QUESTION);
    const pad = tokenizer.tokenToId('<|video_pad|>');
    const before = tokenizer.encode(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>',
    );
    const afterIds = tokenizer.encode(`<|vision_end|>${QUESTION}<|im_end|>\n<|im_start|>assistant\n`);
    assert.deepEqual(layout.ids, [...before, ...Array(3 * GRID).fill(pad), ...afterIds]);
    assert.equal(layout.axes, 3);
    assert.deepEqual(
      layout.visualRows,
      Array.from({ length: 3 * GRID }, (_, i) => before.length + i),
    );
    // Token (unit u, row r, col c) is at (s + u, s + r, s + c); text after it continues past the largest.
    const s = before.length;
    const last = layout.visualRows[3 * GRID - 1];
    assert.deepEqual(layout.positions.slice(3 * last, 3 * last + 3), [s + 2, s + ROWS - 1, s + COLS - 1]);
    assert.equal(layout.nextPosition, s + COLS + afterIds.length);
  });

  it('a single frame is an image: one unit of <|image_pad|> tokens', async () => {
    const { family, tokenizer } = prepared.checkpoint;
    const input = await family.prepare(frames.slice(0, 1));
    assert.equal(input.units, 1);
    const layout = family.layout(frames.slice(0, 1), { units: 1, gridRows: ROWS, gridCols: COLS }, QUESTION);
    const image = tokenizer.tokenToId('<|image_pad|>');
    assert.equal(layout.ids.filter((id) => id === image).length, GRID);
    assert.ok(!layout.ids.includes(tokenizer.tokenToId('<|video_pad|>') ?? -1));
  });

  it("VisionZip keeps each unit's most salient tokens, as the vision graph computed them", async () => {
    const { family, config } = prepared.checkpoint;
    const input = await family.prepare(frames);
    assert.equal(input.units, 3);
    const encoded = await runner.encode(input);
    const request = { budget: 0.111, frames: 3, tokensPerFrame: GRID, numLayers: config.text.numLayers, seed: 0 };
    const layout = family.layout(frames, { units: 3, gridRows: ROWS, gridCols: COLS }, QUESTION);
    const answer = await runVisualQuery(
      runner,
      {
        vision: input,
        frames: 3,
        tokensPerFrame: GRID,
        layout,
        generation: { maxNewTokens: 2, sampling: GREEDY, eosTokenIds: [] },
      },
      createMethod('visionzip', request),
      pairwise,
    );
    const quotas = inputFrameQuotas(request);
    answer.visualTokens.keptPerFrame.forEach((kept, u) => {
      const saliency = Array.from(encoded.saliency.subarray(u * GRID, (u + 1) * GRID));
      const dominant = roundHalfEven((quotas[u] * 54) / 64);
      const top = saliency
        .map((v, i) => [v, i])
        .sort((a, b) => b[0] - a[0] || a[1] - b[1])
        .slice(0, dominant)
        .map(([, i]) => i);
      assert.equal(kept.length, quotas[u]);
      for (const id of top) assert.ok(kept.includes(id), `unit ${u}: salient token ${id} kept (${kept})`);
    });
  });

  it('a live window encodes each frame as its own unit and answers from the encoded frames', async () => {
    const pipeline = await VlmPipeline.open(dir, { runtime: DEFAULT_RUNTIME, graphDir: prepared.graphDir });
    try {
      const encoded = await pipeline.encode(frames.slice(0, 3));
      assert.deepEqual(
        encoded.map((f) => [f.gridRows, f.gridCols, f.saliency.length]),
        encoded.map(() => [ROWS, COLS, GRID]),
      );
      const answer = await pipeline.answerEncoded(encoded, QUESTION, {
        maxNewTokens: 2,
        prune: { method: 'visionzip', budget: 0.25, options: {}, seed: 0 },
      });
      assert.equal(answer.visualTokens.keptPerFrame.length, 3);
      assert.equal(answer.visualTokens.input, roundHalfEven(0.25 * 3 * GRID));
      assert.ok(answer.visualTokens.keptPerFrame.flat().every((id) => id >= 0 && id < GRID));
    } finally {
      await pipeline.close();
    }
  });

  it('refuses frames whose vision attention would not fit in memory, naming max_pixels as the way out', async () => {
    assert.equal(unitAttentionBytes(16, 4784), 16 * 4784 ** 2 * 4 * 3);
    const big = tempDir('qwen2vl-big');
    cpSync(dir, big, { recursive: true });
    writeFileSync(
      join(big, 'preprocessor_config.json'),
      JSON.stringify({ min_pixels: 64, max_pixels: 10 ** 8, patch_size: 4, temporal_patch_size: 2, merge_size: 2 }),
    );
    const ckpt = loadCheckpoint(big);
    try {
      // Square frames of s×s 4-px patches (2 heads) need 2·s⁴·4·3 bytes: the smallest even s past the limit.
      const s = 2 * Math.ceil(((maxUnitAttentionBytes() / unitAttentionBytes(2, 1)) ** 0.25 + 1) / 2);
      const side = 4 * s;
      assert.ok(unitAttentionBytes(2, s * s) > maxUnitAttentionBytes());
      const frame: Frame = { index: 0, timestampS: 0, width: side, height: side, rgb: new Uint8Array(side * side * 3) };
      await assert.rejects(ckpt.family.prepare([frame]), (err: Error) => {
        assert.ok(err instanceof UsageError);
        assert.match(err.message, new RegExp(`${side}×${side} frame is ${s * s} patches`));
        assert.match(err.hint ?? '', /max_pixels/);
        return true;
      });
    } finally {
      ckpt.weights.close();
    }
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EncodedFrame, VlmPipeline } from '../../src/engine/answer-pipeline.js';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { UsageError } from '../../src/errors.js';
import type { Frame } from '../../src/media/frame.js';
import { readOnevisionConfig } from '../../src/model/onevision-config.js';
import { anyresLayout, readOnevisionProcessors } from '../../src/vision/onevision-processor.js';
import { tempDir } from '../helpers/fixtures.js';
import { tinyOnevisionCheckpoint } from '../helpers/onevision-checkpoint.js';
import { syntheticFrame } from '../media/synthetic-video.js';

const QUESTION = 'what colour is the square ?';
const NONE = { method: 'none', budget: 1, options: {}, seed: 0 };
const VISIONZIP = { method: 'visionzip', budget: 0.111, options: {}, seed: 0 };
/** 6×6 pooled tokens per frame in the tiny checkpoint. */
const N = 36;

function frameAt(k: number): Frame {
  return { index: k, timestampS: k / 10, ...syntheticFrame(k) };
}

function largest(values: Float32Array, k: number): number[] {
  return [...values.keys()].sort((a, b) => values[b] - values[a]).slice(0, k);
}

describe('llava_onevision through the pipeline (tiny random checkpoint)', () => {
  let model: string;
  let pipeline: VlmPipeline;
  const frames = [0, 7, 14, 21].map(frameAt);
  let encoded: EncodedFrame[];

  before(async () => {
    model = tinyOnevisionCheckpoint();
    pipeline = await VlmPipeline.open(model, { runtime: DEFAULT_RUNTIME, graphDir: tempDir('onevision-graphs') });
    encoded = [];
    for (const f of frames) encoded.push(...(await pipeline.encode([f])));
  });
  after(() => pipeline.close());

  it('lays a video out as its frames’ pooled tokens, then one image_newline row', () => {
    const { family } = pipeline.checkpoint;
    const layout = family.layout(frames, family.plan(frames.length), QUESTION);
    assert.equal(layout.visualRows.length, frames.length * N);
    assert.deepEqual(layout.separatorRows, [Math.max(...layout.visualRows) + 1]);
    assert.equal(encoded[0].gridRows * encoded[0].gridCols, N);
  });

  it('answers about the video; frames encoded one at a time answer the same (the serve path)', async () => {
    const batch = await pipeline.answer(frames, QUESTION, { maxNewTokens: 4, prune: NONE });
    const window = await pipeline.answerEncoded(encoded, QUESTION, { maxNewTokens: 4, prune: NONE });
    assert.ok(batch.answer.length > 0);
    assert.equal(window.answer, batch.answer);
    assert.equal(batch.visualTokens.perFrame, N);
    assert.equal(batch.promptTokens, frames.length * N + 1 + 11);
  });

  it('VisionZip keeps each frame’s most salient pooled tokens, as the pooling graph computed them', async () => {
    const a = await pipeline.answer(frames, QUESTION, { maxNewTokens: 2, prune: VISIONZIP });
    assert.deepEqual(
      a.visualTokens.stages.map((s) => s.stage),
      ['vision', 'encoder'],
    );
    for (const [f, kept] of a.visualTokens.keptPerFrame.entries()) {
      assert.equal(kept.length, 4, `frame ${f}: 4 of 36 tokens at budget 0.111`);
      assert.ok(
        kept.every((id) => id >= 0 && id < N),
        `frame ${f}: ${kept}`,
      );
      // 54:10 dominant:contextual of 4 tokens → 3 dominant, the top-3 saliency of the frame.
      for (const id of largest(encoded[f].saliency, 3)) assert.ok(kept.includes(id), `frame ${f} keeps ${id}`);
    }
  });

  it('one frame is an anyres image: base tile and tile grid, an image_newline after each grid row', async () => {
    const frame = frameAt(3);
    const a = await pipeline.answer([frame], QUESTION, { maxNewTokens: 3, prune: NONE });
    const config = readOnevisionConfig(model);
    const geometry = anyresLayout(frame.height, frame.width, readOnevisionProcessors(model, config));
    const [rows, cols] = geometry.tokenGrid;
    const tokens = config.patchGrid ** 2 + rows * cols;
    assert.ok(a.answer.length > 0);
    assert.equal(a.visualTokens.perFrame, tokens);
    assert.equal(a.promptTokens, tokens + rows + 11);
    assert.deepEqual(a.visualTokens.keptPerFrame, [Array.from({ length: tokens }, (_, i) => i)]);
    await assert.rejects(
      pipeline.answer([frame], QUESTION, { maxNewTokens: 3, prune: VISIONZIP }),
      (err: Error) =>
        err instanceof UsageError && /visionzip cannot prune a single image on llava_onevision/.test(err.message),
    );
  });
});

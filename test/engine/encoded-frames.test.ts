import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { defaultModelDir } from '../../src/cli/default-model.js';
import { pruningLayers } from '../../src/cli/run-settings.js';
import { type EncodedFrame, VlmPipeline } from '../../src/engine/answer-pipeline.js';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import type { Frame } from '../../src/media/frame.js';
import { videoFrames } from '../../src/media/sampler.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

const CLIP = join(REPO_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');
const VITCOP = { method: 'vitcop', budget: 0.111, options: {}, seed: 0 };
const NONE = { method: 'none', budget: 1, options: {}, seed: 0 };

/**
 * A camera window holds frames encoded one at a time as they arrived; a query on it must answer as
 * the batch path does on the same frames (the vision stage is the only thing moved earlier).
 */
describe('answers on frames encoded one at a time = answers on the same frames in one batch', () => {
  let pipeline: VlmPipeline;
  let frames: Frame[];
  let encoded: EncodedFrame[];

  before(async () => {
    pipeline = await VlmPipeline.open(defaultModelDir(), {
      runtime: DEFAULT_RUNTIME,
      pruningLayers: pruningLayers([VITCOP], 8),
    });
    frames = await lastValueFrom(videoFrames(CLIP, { frames: 8 }).pipe(toArray()));
    encoded = [];
    for (const frame of frames) encoded.push(...(await pipeline.encode([frame])));
  });
  after(() => pipeline.close());

  for (const prune of [NONE, VITCOP]) {
    it(`${prune.method}: same answer, same tokens per stage, same kept patches; no vision time`, async () => {
      const opts = { maxNewTokens: 6, prune };
      const batch = await pipeline.answer(frames, 'what colour is the circle?', opts);
      const window = await pipeline.answerEncoded(encoded, 'what colour is the circle?', opts);
      assert.equal(window.answer, batch.answer);
      assert.ok(batch.answer.length > 0);
      assert.deepEqual(window.visualTokens.stages, batch.visualTokens.stages);
      assert.deepEqual(window.visualTokens.keptPerFrame, batch.visualTokens.keptPerFrame);
      assert.deepEqual(window.frames, batch.frames);
      assert.ok(window.timings.visionMs < batch.timings.visionMs, 'the window skips the vision encoder');
    });
  }

  it("a prompt and answer longer than the model's positions are refused before inference, naming both", async () => {
    await assert.rejects(
      pipeline.answer(frames, 'what colour is the circle?', { maxNewTokens: 8192 }),
      (err: Error) => {
        assert.match(
          err.message,
          /8 frames, the question and 8192 answer tokens need \d+ positions; the model has \d+/,
        );
        return true;
      },
    );
  });

  it('keys are left out when no method needs them, and a query without them still answers unpruned', async () => {
    const [light] = await pipeline.encode([frames[0]], { keepKeys: false });
    assert.equal(light.keys, undefined);
    assert.equal(light.features.length, encoded[0].features.length);
    const a = await pipeline.answerEncoded([light], 'is there a circle?', { maxNewTokens: 3, prune: NONE });
    assert.ok(a.answer.length > 0);
  });
});

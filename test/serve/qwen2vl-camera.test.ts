import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VlmPipeline } from '../../src/engine/answer-pipeline.js';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { LiveSource } from '../../src/media/live-source.js';
import { CameraStream } from '../../src/serve/camera-stream.js';
import { testVideo, tinyQwen2VlCheckpoint } from '../helpers/fixtures.js';

describe('a camera stream on a Qwen2-VL checkpoint', { timeout: 120_000 }, () => {
  let pipeline: VlmPipeline;
  before(async () => {
    pipeline = await VlmPipeline.open(tinyQwen2VlCheckpoint(4), { runtime: DEFAULT_RUNTIME });
  });
  after(() => pipeline.close());

  it('encodes each live frame as its own unit and answers from the window, pruned and not', async () => {
    const clip = await testVideo(2, '160x120');
    const source = new LiveSource({
      input: { type: 'file', path: clip, loop: false, speed: 1 },
      fps: 4,
      reconnect: { initialS: 0.2, maxS: 1, jitter: 0.2 },
      stallS: 5,
      connectTimeoutS: 5,
    });
    const camera = new CameraStream('qwen', source, async (f) => (await pipeline.encode([f]))[0], {
      window: { seconds: 60, maxFrames: 8, tokensPerFrame: 48 },
    });
    camera.start();
    await camera.ended;
    const window = camera.window.snapshot();
    assert.ok(window.length >= 3, `${window.length} frames in the window`);
    assert.ok(window.every((f) => f.gridRows === 6 && f.gridCols === 8));
    for (const prune of [
      { method: 'none', budget: 1, options: {}, seed: 0 },
      { method: 'divprune', budget: 0.25, options: {}, seed: 0 },
    ]) {
      const answer = await pipeline.answerEncoded(window, 'is there a circle ?', { maxNewTokens: 2, prune });
      assert.equal(answer.visualTokens.keptPerFrame.length, window.length, prune.method);
      assert.ok(answer.visualTokens.keptPerFrame.flat().every((id) => id >= 0 && id < 48));
    }
  });
});

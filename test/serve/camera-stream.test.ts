import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultModelDir } from '../../src/cli/default-model.js';
import { pruningLayers } from '../../src/cli/run-settings.js';
import { VlmPipeline } from '../../src/engine/answer-pipeline.js';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import type { Frame } from '../../src/media/frame.js';
import { LiveSource } from '../../src/media/live-source.js';
import { CameraStream } from '../../src/serve/camera-stream.js';
import { llavaConfig, REPO_ROOT, testVideo } from '../helpers/fixtures.js';

const CLIP = join(REPO_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');
const QUESTION = 'what colour is the circle?';
const METHODS = [
  { method: 'none', budget: 1, options: {}, seed: 0 },
  { method: 'vitcop', budget: 0.111, options: {}, seed: 0 },
];

function fileSource(path: string, fps: number, speed = 0) {
  return new LiveSource({
    input: { type: 'file', path, loop: false, speed },
    fps,
    reconnect: { initialS: 0.2, maxS: 1, jitter: 0.2 },
    stallS: 5,
    connectTimeoutS: 5,
  });
}

describe('a camera stream on the demo model', { timeout: 120_000 }, () => {
  let pipeline: VlmPipeline;
  before(async () => {
    pipeline = await VlmPipeline.open(defaultModelDir(), {
      runtime: DEFAULT_RUNTIME,
      pruningLayers: pruningLayers(METHODS, 8),
    });
  });
  after(() => pipeline.close());

  it('a window filled from a file stream answers as sieve ask on the same frames (none, vitcop)', async () => {
    const camera = new CameraStream('demo', fileSource(CLIP, 4, 1), async (f) => (await pipeline.encode([f]))[0], {
      window: { seconds: 60, maxFrames: 16, tokensPerFrame: 64 },
    });
    camera.start();
    await camera.ended;
    const window = camera.window.snapshot();
    assert.equal(window.length, 8);
    for (const prune of METHODS) {
      const answer = await pipeline.answerEncoded(window, QUESTION, { maxNewTokens: 8, prune });
      const args = ['ask', CLIP, QUESTION, '--fps', '4', '--max-new-tokens', '8', '--json'];
      if (prune.method !== 'none') args.push('--method', prune.method, '--budget', String(prune.budget));
      const cli = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'sieve.js'), ...args], { encoding: 'utf8' });
      assert.equal(cli.status, 0, cli.stderr);
      const ask = JSON.parse(cli.stdout);
      assert.deepEqual(
        window.map((f) => Math.round(f.timestampS * 1000) / 1000),
        ask.frames.map((f: { t: number }) => f.t),
        'same frames',
      );
      assert.equal(answer.answer, ask.answer, prune.method);
      assert.equal(answer.generatedTokens, ask.tokens.generated);
      assert.deepEqual(answer.visualTokens.stages, ask.tokens.stages, prune.method);
      assert.deepEqual(answer.visualTokens.keptPerFrame, ask.kept_per_frame, prune.method);
      // Encoding the 8 frames takes ~20 ms; a garbage-collection pause in a long test run can take a few.
      if (prune.method === 'none') assert.ok(answer.timings.visionMs < 5, 'the window query runs no vision encoder');
    }
  });

  it('a source faster than the encoder: drops counted, one frame waiting, the window bounded', async () => {
    const clip = await testVideo(6, '160x120'); // 60 frames at 10 fps, played 3× faster: one every 33 ms
    let inEncoder = 0;
    let most = 0;
    const slowEncode = async (frame: Frame) => {
      inEncoder++;
      most = Math.max(most, inEncoder);
      try {
        await new Promise((r) => setTimeout(r, 100));
        return (await pipeline.encode([frame], { keepKeys: false }))[0];
      } finally {
        inEncoder--;
      }
    };
    const camera = new CameraStream('fast', fileSource(clip, 10, 3), slowEncode, {
      window: { seconds: 60, maxFrames: 5, tokensPerFrame: 64 },
    });
    camera.start();
    await camera.ended;
    const { frames, window } = camera.status();
    assert.equal(frames.sampled, 60);
    assert.ok(frames.dropped > 30, `dropped ${frames.dropped}`);
    assert.equal(frames.encoded + frames.dropped, frames.sampled, 'every frame encoded or counted as dropped');
    assert.equal(most, 1, 'one encode at a time');
    assert.equal(window.frames, 5);
    assert.equal(
      window.bytes,
      5 * 64 * (llavaConfig(pipeline.checkpoint.config).vision.hiddenSize + 1) * 4,
      'no keys kept',
    );
  });
});

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { firstValueFrom, from, lastValueFrom, take, toArray } from 'rxjs';
import { MediaError, UsageError } from '../../src/errors.js';
import type { Frame } from '../../src/media/frame.js';
import { renumber, sampleFps, uniformTimestamps, videoFrames } from '../../src/media/sampler.js';
import { FPS, frameId, tempDir, writeSyntheticVideo } from './synthetic-video.js';

describe('sampler', () => {
  let remove: () => Promise<void>;
  let clip: string;
  let dir: string;

  before(async () => {
    ({ dir, remove } = await tempDir());
    clip = await writeSyntheticVideo(path.join(dir, 'clip.mp4'));
  });
  after(() => remove());

  it('spreads N timestamps over segment centres', () => {
    assert.deepEqual(uniformTimestamps(4, 8), [1, 3, 5, 7]);
    assert.deepEqual(uniformTimestamps(1, 5, 2), [4.5]);
    assert.throws(() => uniformTimestamps(0, 5), UsageError);
    assert.throws(() => uniformTimestamps(2.5, 5), UsageError);
  });

  it('samples N frames uniformly from a file', async () => {
    const frames = await lastValueFrom(videoFrames(clip, { frames: 5 }).pipe(toArray()));
    assert.deepEqual(frames.map(frameId), [5, 15, 25, 35, 45]);
    assert.deepEqual(
      frames.map((f) => f.timestampS),
      [0.5, 1.5, 2.5, 3.5, 4.5],
    );
    assert.deepEqual(
      frames.map((f) => f.index),
      [0, 1, 2, 3, 4],
    );
  });

  it('samples a file at a frame rate', async () => {
    const frames = await lastValueFrom(videoFrames(clip, { fps: 2 }).pipe(toArray()));
    assert.deepEqual(
      frames.map((f) => f.timestampS),
      [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5],
    );
  });

  it('picks the same frames from decoded streams as ffmpeg does for files', async () => {
    const every = await lastValueFrom(videoFrames(clip, { fps: 1000 }).pipe(toArray()));
    for (const fps of [3, 2, 0.7]) {
      const inFfmpeg = await lastValueFrom(videoFrames(clip, { fps }).pipe(toArray()));
      const inRx = await lastValueFrom(from(every).pipe(sampleFps(fps, 0.5 / FPS), renumber(), toArray()));
      assert.deepEqual(inRx.map(frameId), inFfmpeg.map(frameId), `${fps} fps`);
      assert.deepEqual(
        inRx.map((f) => f.index),
        inFfmpeg.map((f) => f.index),
      );
    }
  });

  it('keeps sampling state per subscription', async () => {
    const frames: Frame[] = [0, 0.4, 1.1, 1.2, 2.05].map((t, index) => ({
      index,
      timestampS: t,
      width: 1,
      height: 1,
      rgb: new Uint8Array(3),
    }));
    const sampled = from(frames).pipe(sampleFps(1));
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(
        (await lastValueFrom(sampled.pipe(toArray()))).map((f) => f.timestampS),
        [0, 1.1, 2.05],
      );
    }
  });

  it('stops decoding when unsubscribed', async () => {
    const first = await firstValueFrom(videoFrames(clip, { fps: 10 }));
    assert.equal(frameId(first), 0);
    const two = await lastValueFrom(videoFrames(clip, { fps: 10 }).pipe(take(2), toArray()));
    assert.deepEqual(two.map(frameId), [0, 1]);
  });

  it('reports bad input as an error notification', async () => {
    await assert.rejects(lastValueFrom(videoFrames(path.join(dir, 'missing.mp4'), { frames: 3 })), MediaError);
    await assert.rejects(lastValueFrom(videoFrames(clip, { frames: 0 })), UsageError);
    assert.throws(() => sampleFps(0), UsageError);
  });
});

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { MediaError, UsageError } from '../../src/errors.js';
import { LiveSource } from '../../src/media/live-source.js';
import { uniformTimestamps, videoFrames } from '../../src/media/sampler.js';
import { frameId, tempDir, writeSyntheticVideo } from './synthetic-video.js';

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

  it('a live source picks the same frames from its stream as the file decoder does at a rate', async () => {
    for (const fps of [3, 2, 0.7]) {
      const inFile = await lastValueFrom(videoFrames(clip, { fps }).pipe(toArray()));
      const live = new LiveSource({
        input: { type: 'file', path: clip, loop: false, speed: 0 },
        fps,
        reconnect: { initialS: 1, maxS: 1, jitter: 0 },
        stallS: 10,
        connectTimeoutS: 10,
      });
      const inStream = await lastValueFrom(live.frames().pipe(toArray()));
      assert.deepEqual(inStream.map(frameId), inFile.map(frameId), `${fps} fps`);
      assert.deepEqual(
        inStream.map((f) => f.timestampS),
        inFile.map((f) => f.timestampS),
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
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { lastValueFrom, toArray } from 'rxjs';
import sharp from 'sharp';
import { animationKind, isAnimatedImage } from '../../src/media/animated-image.js';
import { binaries, configureFfmpeg } from '../../src/media/ffmpeg-binaries.js';
import { probeVideo } from '../../src/media/probe.js';
import { videoFrames } from '../../src/media/sampler.js';
import { frameId, HEIGHT, syntheticFrame, tempDir, WIDTH } from './synthetic-video.js';

/** Ten frames, 100 ms each but the sixth, held for 2 s: frames at 0–0.4, 0.5, 2.5–2.8 s; 2.9 s in all. */
const DELAYS_MS = [100, 100, 100, 100, 100, 2000, 100, 100, 100, 100];
const TIMES = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 2.5, 2.6, 2.7, 2.8];

function stacked() {
  const frames = DELAYS_MS.map((_, k) => syntheticFrame(k).rgb);
  const rgb = Buffer.concat(frames);
  return sharp(rgb, { raw: { width: WIDTH, height: HEIGHT * frames.length, channels: 3, pageHeight: HEIGHT } });
}

describe('animated images as videos', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const files: Record<'gif' | 'webp' | 'apng', string> = { gif: '', webp: '', apng: '' };

  before(async () => {
    ({ dir, remove } = await tempDir());
    files.gif = path.join(dir, 'anim.gif');
    files.webp = path.join(dir, 'anim.webp');
    files.apng = path.join(dir, 'anim.png');
    await stacked().gif({ delay: DELAYS_MS, loop: 0 }).toFile(files.gif);
    await stacked().webp({ delay: DELAYS_MS, loop: 0, lossless: true }).toFile(files.webp);
    const { ffmpeg, syncFlag } = await binaries();
    await promisify(execFile)(ffmpeg.path, [
      ...['-v', 'error', '-y', '-i', files.gif, syncFlag, 'passthrough', '-plays', '0', '-f', 'apng', files.apng],
    ]);
  });
  after(() => remove());

  it('tells animations from stills', async () => {
    assert.equal(await animationKind(files.gif), 'gif');
    assert.equal(await animationKind(files.webp), 'webp');
    assert.equal(await animationKind(files.apng), 'apng');
    const still = sharp(Buffer.from(syntheticFrame(3).rgb), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } });
    for (const [name, image] of [
      ['still.png', still.clone().png()],
      ['still.gif', still.clone().gif()],
      ['still.webp', still.clone().webp()],
    ] as const) {
      await image.toFile(path.join(dir, name));
      assert.equal(await isAnimatedImage(path.join(dir, name)), false, name);
    }
    assert.equal(await isAnimatedImage(path.join(dir, 'missing.gif')), false);
  });

  for (const kind of ['gif', 'webp', 'apng'] as const) {
    it(`${kind}: frames with their real timestamps, sampled like a video`, async () => {
      const probed = await probeVideo(files[kind]);
      assert.ok(Math.abs(probed.info.durationS - 2.9) < 0.011, `${kind} lasts ${probed.info.durationS} s`);
      assert.deepEqual(
        probed.frameList.frames.map((f) => Math.round(f.t * 100) / 100),
        TIMES,
      );
      const frames = await lastValueFrom(videoFrames(files[kind], { frames: 4 }).pipe(toArray()));
      // Centres 0.36, 1.09, 1.81, 2.54 s: the sixth frame is on screen from 0.5 s to 2.5 s.
      assert.deepEqual(frames.map(frameId), [4, 5, 5, 6]);
      assert.deepEqual(
        frames.map((f) => Math.round(f.timestampS * 100) / 100),
        [0.4, 0.5, 0.5, 2.5],
      );
      const small = await lastValueFrom(
        videoFrames(files[kind], { fps: 1 }, { fit: { shortestEdge: 60 } }).pipe(toArray()),
      );
      assert.deepEqual(small.map(frameId), [0, 5, 5]);
      assert.deepEqual(
        small.map((f) => [f.width, f.height]),
        new Array(3).fill([80, 60]),
      );
    });
  }

  describe('with the bundled ffmpeg', () => {
    before(() => configureFfmpeg({ ffmpegPath: 'bundled', ffprobePath: 'bundled' }));
    after(() => configureFfmpeg());

    it('reads GIF and APNG the same way', async () => {
      for (const kind of ['gif', 'apng'] as const) {
        const frames = await lastValueFrom(videoFrames(files[kind], { frames: 4 }).pipe(toArray()));
        assert.deepEqual(frames.map(frameId), [4, 5, 5, 6], kind);
      }
    });
  });
});

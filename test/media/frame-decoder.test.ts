import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { lastValueFrom, toArray } from 'rxjs';
import { binaries } from '../../src/media/ffmpeg-binaries.js';
import type { Frame } from '../../src/media/frame.js';
import { type DecodeOptions, decodeFrames } from '../../src/media/frame-decoder.js';
import { type DecodePlan, planSamples } from '../../src/media/frame-plan.js';
import { probeVideo } from '../../src/media/probe.js';
import { videoFrames } from '../../src/media/sampler.js';
import { FPS, frameId, tempDir, writeSyntheticVideo } from './synthetic-video.js';

const run = promisify(execFile);

async function decode(file: string, options: DecodeOptions): Promise<{ frames: Frame[]; plan?: DecodePlan }> {
  let plan: DecodePlan | undefined;
  const frames: Frame[] = [];
  for await (const f of decodeFrames(file, { ...options, onPlan: (p) => (plan = p) })) frames.push(f);
  return { frames, ...(plan ? { plan } : {}) };
}

/** ffmpeg with the binary the adapter uses, quietly. */
async function ffmpeg(args: string[]): Promise<void> {
  const { ffmpeg: bin } = await binaries();
  await run(bin.path, ['-v', 'error', '-y', ...args]);
}

describe('frame decoder', () => {
  let dir: string;
  let remove: () => Promise<void>;
  before(async () => ({ dir, remove } = await tempDir()));
  after(() => remove());

  describe('a long clip with a keyframe every second', () => {
    let clip: string;
    // 25.6 s at 10 fps: every frame shows its number (0..255).
    before(async () => {
      clip = await writeSyntheticVideo(path.join(dir, 'long.mp4'), { keyframeInterval: FPS, crf: 30 }, 256);
    });

    it('seeks to the keyframe before each far-apart frame; the same frames as one linear pass', async () => {
      const timestamps = [3, 9.04, 15.16, 21, 25.5];
      const seek = await decode(clip, { timestamps });
      assert.equal(seek.plan?.strategy, 'seek');
      assert.equal(seek.plan?.segments.length, 5);
      assert.ok((seek.plan?.decodedFrames ?? 0) < 5 * 11, `${seek.plan?.decodedFrames} frames decoded`);
      assert.deepEqual(seek.frames.map(frameId), [30, 90, 152, 210, 255]);
      assert.deepEqual(
        seek.frames.map((f) => f.timestampS),
        [3, 9, 15.2, 21, 25.5],
      );
      const linear = await decode(clip, { timestamps, strategy: 'linear' });
      assert.equal(linear.plan?.strategy, 'linear');
      assert.ok((linear.plan?.decodedFrames ?? 0) > 200);
      assert.deepEqual(linear.frames.map(frameId), [30, 90, 152, 210, 255]);
      for (const [i, f] of linear.frames.entries())
        assert.deepEqual(f.rgb, seek.frames[i]!.rgb, `frame ${i}: same pixels`);
    });

    it('runs more segments than one ffmpeg takes in several runs, in order', async () => {
      const timestamps = Array.from({ length: 10 }, (_, i) => 1 + i * 2.5);
      const { frames, plan } = await decode(clip, { timestamps, strategy: 'seek' });
      assert.equal(plan?.segments.length, 10);
      assert.equal(plan?.runs.length, 2);
      assert.deepEqual(
        frames.map(frameId),
        timestamps.map((t) => Math.round(t * FPS)),
      );
    });

    it('plans, then decodes exactly the timestamps used, from one probe', async () => {
      const probed = await probeVideo(clip);
      const { requested, used } = planSamples(probed.info, { fps: 2 }, 4);
      assert.equal(requested.length, 52);
      assert.deepEqual(used, [3, 9.5, 16, 22.5]);
      const frames = await lastValueFrom(videoFrames(clip, { timestamps: used }, { probed }).pipe(toArray()));
      assert.deepEqual(frames.map(frameId), [30, 95, 160, 225]);
      const capped = await lastValueFrom(videoFrames(clip, { fps: 2 }, { maxFrames: 4 }).pipe(toArray()));
      assert.deepEqual(capped.map(frameId), [30, 95, 160, 225]);
    });
  });

  it('inside a gap (variable frame rate), the frame on screen, not the next one', async () => {
    const cfr = await writeSyntheticVideo(path.join(dir, 'cfr.mp4'), {}, 40);
    const vfr = path.join(dir, 'gap.mp4');
    // Frames 0–19 at 0.0–1.9 s, then nothing until frame 20 at 4.0 s (frames 20–39 at 4.0–5.9 s).
    const { syncFlag } = await binaries();
    const retime = "setpts='(N/10+2*gte(N,20))/TB'";
    await ffmpeg(['-i', cfr, '-vf', retime, syncFlag, 'passthrough', '-c:v', 'libx264', '-pix_fmt', 'yuv444p', vfr]);
    const { frames } = await decode(vfr, { timestamps: [1.0, 3.0, 3.98, 4.5] });
    assert.deepEqual(frames.map(frameId), [10, 19, 20, 25]);
    assert.deepEqual(
      frames.map((f) => f.timestampS),
      [1, 1.9, 4, 4.5],
    );
    const everySecond = await lastValueFrom(videoFrames(vfr, { fps: 1 }).pipe(toArray()));
    assert.deepEqual(everySecond.map(frameId), [0, 10, 19, 19, 20, 30]);
  });

  it('keeps 4K frames at the size the preprocessor needs, and small ones as they are', async () => {
    const uhd = path.join(dir, 'uhd.mp4');
    await ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'color=c=0x3060a0:size=3840x2160:rate=2:duration=1.5',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      uhd,
    ]);
    const frames = await lastValueFrom(videoFrames(uhd, { frames: 3 }, { fit: { shortestEdge: 224 } }).pipe(toArray()));
    assert.deepEqual(
      frames.map((f) => [f.width, f.height, f.rgb.length]),
      new Array(3).fill([398, 224, 398 * 224 * 3]),
    );
    assert.equal(
      frames.reduce((sum, f) => sum + f.rgb.byteLength, 0),
      3 * 398 * 224 * 3,
      'bytes kept: 0.26 MB per frame instead of 24.9 MB',
    );

    const small = await writeSyntheticVideo(path.join(dir, 'small.mp4'), {}, 10);
    const asIs = await lastValueFrom(videoFrames(small, { frames: 3 }).pipe(toArray()));
    const fitted = await lastValueFrom(
      videoFrames(small, { frames: 3 }, { fit: { shortestEdge: 224 } }).pipe(toArray()),
    );
    for (const [i, f] of fitted.entries()) {
      assert.equal(f.width, 160);
      assert.deepEqual(f.rgb, asIs[i]!.rgb, 'never scaled up: the same bytes');
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MediaError, UsageError } from '../../src/errors.js';
import { MAX_FRAMES } from '../../src/media/frame.js';
import {
  evenlyPicked,
  type FrameList,
  fitFor,
  type KnownFrame,
  keptSize,
  planDecode,
  planSamples,
} from '../../src/media/frame-plan.js';
import type { ProcessorConfig } from '../../src/model/processor-config.js';
import { resizedSize } from '../../src/vision/preprocess.js';

/** Frames at `fps` from `from` to `to` (exclusive), a keyframe every `gop`. */
function cfr(fps: number, from: number, to: number, gop = 250): KnownFrame[] {
  const n = Math.round((to - from) * fps);
  return Array.from({ length: n }, (_, k) => ({ t: from + k / fps, key: k % gop === 0 }));
}
const all = (frames: KnownFrame[]): FrameList => ({
  frames,
  covered: [{ fromS: Number.NEGATIVE_INFINITY, toS: Number.POSITIVE_INFINITY }],
});
const close = (actual: number[], expected: number[]) =>
  assert.deepEqual(
    actual.map((x) => Math.round(x * 1e6) / 1e6),
    expected,
  );

describe('sample plan', () => {
  const hour = { durationS: 3600, startS: 0, fps: 25 };

  it('N frames: segment centres, all used under the cap', () => {
    const plan = planSamples({ durationS: 8, startS: 1, fps: 10 }, { frames: 4 });
    assert.deepEqual(plan.requested, [2, 4, 6, 8]);
    assert.deepEqual(plan.used, plan.requested);
  });

  it('a frame rate: the multiples of 1/fps, never more often than the video has frames', () => {
    const clip = { durationS: 5, startS: 0, fps: 10 };
    close(planSamples(clip, { fps: 2 }).requested, [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5]);
    assert.equal(planSamples(clip, { fps: 3 }).requested.length, 15);
    assert.equal(planSamples(clip, { fps: 1000 }).requested.length, 50, 'each of the 50 frames once');
    assert.throws(() => planSamples(clip, { fps: 0 }), UsageError);
  });

  it('over the cap: evenly picked among the requested, covering the whole video', () => {
    const plan = planSamples(hour, { fps: 1 }, 8);
    assert.equal(plan.requested.length, 3600);
    assert.deepEqual(plan.used, [225, 675, 1125, 1575, 2025, 2475, 2925, 3375]);
    const frames = planSamples(hour, { frames: 2048 });
    assert.equal(frames.requested.length, 2048);
    assert.equal(frames.used.length, MAX_FRAMES, 'the default cap is MAX_FRAMES');
    assert.ok(frames.used[0]! < 3 && frames.used[MAX_FRAMES - 1]! > 3597, 'first and last stretches sampled');
    assert.deepEqual(evenlyPicked([1, 2, 3], 5), [1, 2, 3]);
    assert.throws(() => planSamples(hour, { frames: 8 }, MAX_FRAMES + 1), UsageError);
    assert.throws(() => planSamples(hour, { frames: 8 }, 0), UsageError);
  });
});

describe('size kept', () => {
  it('shortest edge: down to what the preprocessor resizes to, which then changes nothing', () => {
    assert.deepEqual(keptSize(3840, 2160, { shortestEdge: 224 }), { width: 398, height: 224 });
    assert.deepEqual(keptSize(2160, 3840, { shortestEdge: 336 }), { width: 336, height: 597 });
    for (const [w, h] of [
      [3840, 2160],
      [1080, 1920],
      [333, 250],
    ] as const) {
      const kept = keptSize(w, h, { shortestEdge: 224 });
      assert.ok(kept);
      assert.deepEqual(resizedSize({ shortestEdge: 224 }, kept.width, kept.height), kept);
      assert.deepEqual(resizedSize({ shortestEdge: 224 }, w, h), kept);
    }
  });

  it('never up: frames at or below the size are kept as decoded', () => {
    assert.equal(keptSize(64, 64, { shortestEdge: 64 }), undefined);
    assert.equal(keptSize(320, 200, { shortestEdge: 224 }), undefined);
    assert.equal(keptSize(3840, 2160, undefined), undefined);
    assert.equal(keptSize(300, 200, { width: 384, height: 384 }), undefined);
  });

  it('an exact size: each side down to it at most', () => {
    assert.deepEqual(keptSize(3840, 2160, { width: 384, height: 384 }), { width: 384, height: 384 });
    assert.deepEqual(keptSize(3840, 300, { width: 384, height: 384 }), { width: 384, height: 300 });
  });

  it("from a processor config: its resize step's target, none when it does not resize", () => {
    const clip: ProcessorConfig = {
      doResize: true,
      size: { shortestEdge: 336 },
      resample: 'bicubic',
      doCenterCrop: true,
      cropSize: { width: 336, height: 336 },
      doRescale: true,
      rescaleFactor: 1 / 255,
      doNormalize: true,
      imageMean: [0.5, 0.5, 0.5],
      imageStd: [0.5, 0.5, 0.5],
    };
    assert.deepEqual(fitFor(clip), { shortestEdge: 336 });
    assert.equal(fitFor({ ...clip, doResize: false }), undefined);
  });
});

describe('decode plan', () => {
  const video = { durationS: 5, startS: 0, fps: 10, width: 160, height: 120 };

  it('without a frame list: the first frame at or after t − half a frame', () => {
    const plan = planDecode(video, [2.5, 0.26, 5]);
    assert.deepEqual(
      plan.requests.map((r) => r.t),
      [0.26, 2.5, 5],
    );
    close(
      plan.requests.map((r) => r.threshold),
      [0.21, 2.45, 4.85],
    );
    assert.equal(plan.strategy, 'linear');
  });

  it('with a frame list: the nearest frame where they are regular, the one on screen in a gap', () => {
    // 10 fps, then nothing from 1.9 s to 4.0 s (a camera that sends frames on change).
    const frames = [...cfr(10, 0, 2), ...cfr(10, 4, 5).map((f) => ({ ...f, key: false }))];
    const plan = planDecode({ ...video, fps: 30 / 5 }, [0.26, 3.0, 3.97, 4.21], { frameList: all(frames) });
    const chosen = plan.requests.map((r) => frames.find((f) => f.t >= r.threshold)?.t);
    close(chosen as number[], [0.3, 1.9, 4, 4.2]);
    // Half-way between two frames goes to the earlier, as before (the demo clips sample exactly there).
    const half = planDecode(video, [0.25], { frameList: all(cfr(10, 0, 5)) });
    close([cfr(10, 0, 5).find((f) => f.t >= half.requests[0]!.threshold)!.t], [0.2]);
  });

  it('requests on the same frame share it', () => {
    const plan = planDecode(video, [1.0, 1.01, 1.02], { frameList: all(cfr(10, 0, 5)) });
    assert.equal(new Set(plan.requests.map((r) => r.threshold)).size, 1);
    assert.equal(plan.segments[0]!.thresholds.length, 1);
  });

  it('seeks to each frame of a long video, decodes linearly when frames are close', () => {
    const hour = { durationS: 3600, startS: 0, fps: 25, width: 1920, height: 1080 };
    const list = all(cfr(25, 0, 3600));
    const used = planSamples(hour, { frames: 8 }).used;
    const seek = planDecode(hour, used, { frameList: list, seekable: true });
    assert.equal(seek.strategy, 'seek');
    assert.equal(seek.segments.length, 8);
    assert.deepEqual(seek.runs, [[0, 1, 2, 3, 4, 5, 6, 7]]);
    assert.ok(seek.decodedFrames < 8 * 251, `${seek.decodedFrames} frames decoded`);
    for (const [i, s] of seek.segments.entries()) {
      assert.ok(s.seekS <= used[i]! && s.seekS > used[i]! - 1, `segment ${i} seeks to ${s.seekS}`);
      assert.ok(s.endS !== undefined && s.endS > used[i]! && s.endS < used[i]! + 0.04);
    }
    const linear = planDecode(hour, used, { frameList: list, seekable: true, strategy: 'linear' });
    assert.equal(linear.segments.length, 1);
    assert.ok(linear.decodedFrames > 3000 * 25, `${linear.decodedFrames} frames decoded`);
    assert.deepEqual(
      linear.requests.map((r) => r.threshold),
      seek.requests.map((r) => r.threshold),
      'the same frames either way',
    );

    const dense = planDecode(hour, planSamples({ ...hour, durationS: 60 }, { fps: 2 }).used, {
      frameList: list,
      seekable: true,
    });
    assert.equal(dense.strategy, 'linear', 'frames 0.5 s apart within 10 s GOPs');
    const unseekable = planDecode(hour, used, { frameList: list, seekable: false });
    assert.equal(unseekable.strategy, 'linear');
    const big = planDecode({ ...hour, width: 3840, height: 2160 }, used, {
      frameList: list,
      seekable: true,
      strategy: 'seek',
    });
    assert.deepEqual(big.runs, [
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ]);
    const small = planDecode({ ...hour, width: 3840, height: 2160 }, used, {
      frameList: list,
      seekable: true,
      fit: { shortestEdge: 224 },
    });
    assert.deepEqual(small.size, { width: 398, height: 224 });
    assert.equal(small.runs.length, 4, 'decoders work at 4K whatever the size kept');
  });

  it('refuses timestamps outside the video and more than MAX_FRAMES', () => {
    assert.throws(() => planDecode(video, [5.5], { name: 'clip.mp4' }), MediaError);
    assert.throws(() => planDecode(video, [Number.NaN]), MediaError);
    assert.throws(() => planDecode(video, new Array(MAX_FRAMES + 1).fill(1)), UsageError);
  });
});

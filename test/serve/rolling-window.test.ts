import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { changeGate } from '../../src/serve/change-gate.js';
import { encodeLatest } from '../../src/serve/encode-latest.js';
import { evenlySpaced, RollingWindow, type WindowFrame } from '../../src/serve/rolling-window.js';

/** A window frame whose 4 patches of width 2 point along `angles` (radians), so cosines are known. */
function frameAt(t: number, angles = [0, 0, 0, 0]): WindowFrame {
  const features = Float32Array.from(angles.flatMap((a) => [Math.cos(a), Math.sin(a)]));
  return { index: 0, timestampS: t, gridRows: 2, gridCols: 2, features, saliency: new Float32Array(4), receivedAt: 0 };
}

describe('rolling window', () => {
  it('holds the last seconds, at most max_frames and max_tokens, oldest first', () => {
    const w = new RollingWindow({ seconds: 3, maxFrames: 10, tokensPerFrame: 4 });
    for (let t = 0; t <= 10; t += 0.5) w.add(frameAt(t));
    assert.deepEqual(
      w.snapshot().map((f) => f.timestampS),
      [7, 7.5, 8, 8.5, 9, 9.5, 10],
    );
    const byFrames = new RollingWindow({ seconds: 100, maxFrames: 4, tokensPerFrame: 4 });
    const byTokens = new RollingWindow({ seconds: 100, maxFrames: 100, maxTokens: 12, tokensPerFrame: 4 });
    for (let t = 0; t < 10; t++) {
      byFrames.add(frameAt(t));
      byTokens.add(frameAt(t));
    }
    assert.equal(byFrames.size, 4);
    assert.equal(byTokens.size, 3);
    assert.equal(byTokens.bytes, 3 * (8 + 4) * 4);
    assert.equal(byFrames.spanS, 3);
  });

  it('a snapshot of the last seconds, spread evenly to at most maxFrames, keeps the newest frame', () => {
    const w = new RollingWindow({ seconds: 100, maxFrames: 100, tokensPerFrame: 4 });
    for (let t = 0; t < 20; t++) w.add(frameAt(t));
    assert.deepEqual(
      w.snapshot({ seconds: 5 }).map((f) => f.timestampS),
      [14, 15, 16, 17, 18, 19],
    );
    assert.deepEqual(
      w.snapshot({ maxFrames: 4 }).map((f) => f.timestampS),
      [0, 6, 13, 19],
    );
    assert.deepEqual(evenlySpaced([1, 2, 3], 1), [3]);
  });

  it('a source whose clock starts again (a restart) starts the window again', () => {
    const w = new RollingWindow({ seconds: 100, maxFrames: 100, tokensPerFrame: 4 });
    for (const t of [5, 6, 7, 1, 2]) w.add(frameAt(t));
    assert.deepEqual(
      w.snapshot().map((f) => f.timestampS),
      [1, 2],
    );
  });
});

describe('change gate (ViTCoP Stage 0 test per frame)', () => {
  it('skips frames whose patches are nearly all static, keeps changed ones and one per max_gap_s', async () => {
    const skipped: number[] = [];
    const frames = [
      frameAt(0),
      frameAt(1, [0.1, 0, 0, 0]), // cos 0.995: all static
      frameAt(2, [0, 0, 0, 1.5]), // one patch of four moved: 75 % static < 95 %
      frameAt(3, [0, 0, 0, 1.5]),
      frameAt(13, [0, 0, 0, 1.5]), // still, but 11 s after the last kept frame
    ];
    const out = await lastValueFrom(
      from(frames).pipe(
        changeGate({ tauStatic: 0.9, staticFraction: 0.95, maxGapS: 10 }, (f) => skipped.push(f.timestampS)),
        toArray(),
      ),
    );
    assert.deepEqual(
      out.map((f) => f.timestampS),
      [0, 2, 13],
    );
    assert.deepEqual(skipped, [1, 3]);
  });
});

describe('encodeLatest: bounded backpressure', () => {
  it('a source faster than the encoder: one encode at a time, one waiting, the rest dropped', async () => {
    const source = new Subject<number>();
    const dropped: number[] = [];
    let running = 0;
    let maxRunning = 0;
    const slow = async (x: number) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return x * 10;
    };
    const result = lastValueFrom(
      source.pipe(
        encodeLatest(slow, (x) => dropped.push(x)),
        toArray(),
      ),
    );
    for (let i = 0; i < 10; i++) source.next(i); // all at once, while 0 is encoding
    source.complete();
    assert.deepEqual(await result, [0, 90]);
    assert.deepEqual(dropped, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(maxRunning, 1);
  });

  it('an encoder error reaches the subscriber', async () => {
    const failing = async () => {
      throw new Error('broken frame');
    };
    await assert.rejects(lastValueFrom(from([1]).pipe(encodeLatest(failing, () => undefined))), /broken frame/);
  });
});

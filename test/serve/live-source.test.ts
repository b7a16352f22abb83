import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { filter, firstValueFrom, type Observable, take, toArray } from 'rxjs';
import sharp from 'sharp';
import { ffmpegBinaries } from '../../src/media/ffmpeg-binaries.js';
import type { Frame } from '../../src/media/frame.js';
import { type LiveInput, LiveSource } from '../../src/media/live-source.js';
import { REPO_ROOT, tempDir, testVideo } from '../helpers/fixtures.js';
import { freePort } from '../helpers/ports.js';
import { RtspServer } from '../helpers/rtsp-server.js';
import { waitFor } from '../helpers/wait.js';

const DEMO_CLIP = join(REPO_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');

function source(input: LiveInput, extra: { stallS?: number; connectTimeoutS?: number; fps?: number } = {}) {
  const events: string[] = [];
  const live = new LiveSource({
    input,
    fps: extra.fps ?? 4,
    reconnect: { initialS: 0.2, maxS: 0.5, jitter: 0.2 },
    stallS: extra.stallS ?? 2,
    connectTimeoutS: extra.connectTimeoutS ?? 3,
    onEvent: (m) => events.push(m),
  });
  return { live, events };
}

/** The first `n` frames, failing after `ms`. */
function firstFrames(frames: Observable<Frame>, n: number, ms = 20_000): Promise<Frame[]> {
  return Promise.race([
    firstValueFrom(frames.pipe(take(n), toArray())),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`fewer than ${n} frames in ${ms} ms`)), ms)),
  ]);
}

describe('live sources', { timeout: 60_000 }, () => {
  it('a looped file plays on past its end with time going forward, paced by the speed factor', async () => {
    const { live } = source({ type: 'file', path: DEMO_CLIP, loop: true, speed: 4 });
    const started = performance.now();
    const frames = await firstFrames(live.frames(), 14);
    const elapsedS = (performance.now() - started) / 1000;
    live.stop();
    const ts = frames.map((f) => f.timestampS);
    assert.deepEqual(
      ts,
      ts.map((_, i) => i * 0.25),
      'the 2-s clip at 4 fps, twice over',
    );
    assert.ok(elapsedS > (13 * 0.25) / 4 - 0.05, `paced at 4× real time (${elapsedS.toFixed(2)} s)`);
    assert.equal(live.status().state, 'stopped');
  });

  it('a file that does not loop ends, and the source says so', async () => {
    const { live, events } = source({ type: 'file', path: DEMO_CLIP, loop: false, speed: 0 });
    const frames = await firstValueFrom(live.frames().pipe(toArray()));
    assert.equal(frames.length, 8);
    assert.equal(live.status().state, 'ended');
    assert.ok(events.includes('source ended'));
  });

  it('an image folder: each image a frame, new images picked up as they appear', async () => {
    const dir = tempDir('images');
    const { ffmpeg } = await ffmpegBinaries();
    const png = (name: string, colour: string) =>
      execFileSync(ffmpeg.path, [
        '-v',
        'error',
        '-f',
        'lavfi',
        '-i',
        `color=${colour}:size=32x24`,
        '-frames:v',
        '1',
        join(dir, name),
      ]);
    png('a.png', 'red');
    png('b.png', 'blue');
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    const { live } = source({ type: 'images', path: dir, intervalS: 0.05, loop: false }, { fps: 100 });
    const frames = live.frames();
    const got = firstFrames(frames, 3);
    setTimeout(() => png('c.png', 'lime'), 300);
    const [a, b, c] = await got;
    live.stop();
    assert.ok(a.rgb[0] > 240 && b.rgb[2] > 240 && c.rgb[1] > 240, 'red, blue, then the new lime image');
    assert.equal(a.width, 32);
  });

  it('a stream with corrupt packets keeps delivering frames after the damage', async () => {
    const clip = await testVideo(6, '160x120');
    const ts = join(tempDir('corrupt'), 'damaged.ts');
    const { ffmpeg } = await ffmpegBinaries();
    execFileSync(ffmpeg.path, ['-v', 'error', '-i', clip, '-c', 'copy', '-f', 'mpegts', ts]);
    const bytes = readFileSync(ts);
    bytes.fill(0x47, Math.floor(bytes.length * 0.3), Math.floor(bytes.length * 0.3) + 4000); // garbage mid-file
    writeFileSync(ts, bytes);
    const { live } = source({ type: 'file', path: ts, loop: false, speed: 0 }, { fps: 2 });
    const frames = await firstValueFrom(live.frames().pipe(toArray()));
    assert.ok(frames.at(-1)!.timestampS > 4, `frames after the damage (last at ${frames.at(-1)?.timestampS} s)`);
    assert.ok(frames.length >= 9, `${frames.length} frames of 12`);
  });

  it('an HTTP MJPEG stream (multipart JPEGs, as IP cameras serve them)', async () => {
    const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 10, b: 10 } } })
      .jpeg()
      .toBuffer();
    const server = createHttpServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'multipart/x-mixed-replace; boundary=frame' });
      const timer = setInterval(() => {
        res.write(`--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`);
        res.write(jpeg);
        res.write('\r\n');
      }, 50);
      req.on('close', () => clearInterval(timer));
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      const { live } = source({ type: 'http', url: `http://127.0.0.1:${port}/mjpeg` }, { fps: 5 });
      const frames = await firstFrames(live.frames(), 4);
      live.stop();
      assert.deepEqual(
        frames.map((f) => f.timestampS),
        [0, 0.2, 0.4, 0.6],
      );
      assert.ok(
        frames.every((f) => f.width === 64 && f.rgb[0] > 190),
        'the red JPEGs',
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('an address that never answers: connect timeout, backoff, reconnects counted, last error kept', async () => {
    const silent: Server = createServer(() => undefined); // accepts, never speaks RTSP
    const port = await freePort();
    await new Promise<void>((resolve) => silent.listen(port, '127.0.0.1', resolve));
    try {
      const { live, events } = source(
        { type: 'rtsp', url: `rtsp://127.0.0.1:${port}/cam`, transport: 'tcp' },
        { connectTimeoutS: 0.5 },
      );
      const subscription = live.frames().subscribe();
      await waitFor(() => live.status().reconnects >= 2, 10_000);
      subscription.unsubscribe();
      const status = live.status();
      assert.match(status.lastError?.message ?? '', /no frame within 0\.5 s of connecting/);
      assert.ok(events.some((e) => /reconnecting in \d/.test(e)));
      assert.equal(status.framesDecoded, 0);
    } finally {
      silent.close();
    }
  });
});

describe('RTSP from a real RTSP server', { timeout: 120_000 }, () => {
  let server: RtspServer;
  before(async () => {
    server = await RtspServer.start(await testVideo(4, '160x120'));
  });
  after(() => server.kill());

  it('the server killed mid-stream and restarted → the source reconnects, frames flow again', async () => {
    const { live, events } = source({ type: 'rtsp', url: server.url, transport: 'udp' }, { stallS: 1.5, fps: 5 });
    const frames = live.frames();
    const timestamps: number[] = [];
    const subscription = frames.subscribe((f) => timestamps.push(f.timestampS));
    try {
      // A freshly started rtsp-server-perl can take a few connect attempts (3 s each) before it sends RTP.
      await waitFor(() => timestamps.length >= 5, 45_000);
      assert.equal(live.status().state, 'live');
      await server.kill();
      await waitFor(() => live.status().state !== 'live', 10_000);
      const before = timestamps.length;
      await server.resume();
      await waitFor(() => timestamps.length >= before + 5, 30_000);
      const status = live.status();
      assert.equal(status.state, 'live');
      assert.ok(status.reconnects >= 1, `reconnects: ${status.reconnects}`);
      assert.ok(status.lastError, 'the failure is kept in the status');
      assert.ok(events.filter((e) => e.startsWith('source up')).length >= 2, events.join('\n'));
      for (let i = 1; i < timestamps.length; i++)
        assert.ok(timestamps[i] > timestamps[i - 1], 'time only goes forward');
    } finally {
      subscription.unsubscribe();
    }
  });

  it('a camera copy of the same stream is unaffected by another camera that never connects', async () => {
    const good = source({ type: 'rtsp', url: server.url, transport: 'udp' });
    const bad = source({ type: 'rtsp', url: `rtsp://127.0.0.1:${await freePort()}/none`, transport: 'udp' });
    const badSub = bad.live.frames().subscribe();
    try {
      const frames = await firstFrames(good.live.frames().pipe(filter((f) => f.width === 160)), 3);
      assert.equal(frames.length, 3);
      assert.notEqual(bad.live.status().state, 'live');
    } finally {
      badSub.unsubscribe();
      good.live.stop();
    }
  });
});

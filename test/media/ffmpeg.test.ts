import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MediaError, UsageError } from '../../src/errors.js';
import { configureFfmpeg, ffmpegBinaries } from '../../src/media/ffmpeg-binaries.js';
import type { Frame } from '../../src/media/frame.js';
import type { DecodeOptions } from '../../src/media/frame-decoder.js';
import { decodeFrames } from '../../src/media/frame-decoder.js';
import { probe } from '../../src/media/probe.js';
import { encodeVideo } from '../../src/media/video-encoder.js';
import {
  FPS,
  FRAMES,
  frameId,
  HEIGHT,
  PATCHES,
  patchMean,
  tempDir,
  WIDTH,
  writeSyntheticVideo,
} from './synthetic-video.js';

async function decodeAll(file: string, options?: DecodeOptions): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const f of decodeFrames(file, options)) frames.push(f);
  return frames;
}

function mediaError(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof MediaError, `expected a MediaError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(err.hint, 'a MediaError says what to do');
    return true;
  };
}

/** A 1 s mono 16-bit PCM WAV: a file that has audio and no video. */
function wav(): Buffer {
  const rate = 8000;
  const b = Buffer.alloc(44 + rate * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + rate * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(rate * 2, 40);
  for (let i = 0; i < rate; i++)
    b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return b;
}

describe('ffmpeg adapter', () => {
  let dir: string;
  let remove: () => Promise<void>;
  let clip: string;

  before(async () => {
    ({ dir, remove } = await tempDir());
    clip = await writeSyntheticVideo(path.join(dir, 'clip.mp4'));
  });
  after(() => remove());

  it('reports which binaries it uses', async () => {
    const b = await ffmpegBinaries();
    for (const bin of [b.ffmpeg, b.ffprobe]) {
      assert.ok(['option', 'env', 'path', 'bundled'].includes(bin.source));
      assert.ok(bin.path.length > 0);
      assert.notEqual(bin.version, 'unknown');
    }
  });

  it('refuses an FFMPEG_PATH that does not run, naming it', async () => {
    const saved = process.env.FFMPEG_PATH;
    process.env.FFMPEG_PATH = path.join(dir, 'no-such-ffmpeg');
    configureFfmpeg();
    try {
      await assert.rejects(
        ffmpegBinaries(),
        (err: unknown) => err instanceof UsageError && /FFMPEG_PATH/.test(err.message),
      );
    } finally {
      if (saved === undefined) delete process.env.FFMPEG_PATH;
      else process.env.FFMPEG_PATH = saved;
      configureFfmpeg();
    }
  });

  it('probes an encoded clip', async () => {
    const info = await probe(clip);
    assert.equal(info.width, WIDTH);
    assert.equal(info.height, HEIGHT);
    assert.equal(info.fps, FPS);
    assert.equal(info.frameCount, FRAMES);
    assert.equal(info.codec, 'h264');
    assert.equal(info.startS, 0);
    assert.ok(Math.abs(info.durationS - FRAMES / FPS) < 1e-6, `duration ${info.durationS}`);
  });

  it('decodes every frame, in order, with its timestamp and colours', async () => {
    const frames = await decodeAll(clip);
    assert.equal(frames.length, FRAMES);
    frames.forEach((f, k) => {
      assert.equal(f.index, k);
      assert.equal(frameId(f), k);
      assert.equal(f.timestampS, k / FPS);
      assert.equal(f.rgb.length, WIDTH * HEIGHT * 3);
    });
    for (const f of [frames[0]!, frames[FRAMES - 1]!]) {
      for (const p of PATCHES) {
        const mean = patchMean(f, p);
        for (const [c, v] of mean.entries()) {
          assert.ok(Math.abs(v - p.rgb[c]!) <= 4, `patch ${p.rgb} decodes as ${mean.map(Math.round)}`);
        }
      }
    }
  });

  it('decodes the frame nearest to each timestamp, in time order', async () => {
    const frames = await decodeAll(clip, { timestamps: [4.99, 0.26, 0, 0.24, 2.5, 5] });
    assert.deepEqual(frames.map(frameId), [0, 2, 3, 25, 49, 49]);
    assert.deepEqual(
      frames.map((f) => f.index),
      [0, 1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      frames.map((f) => f.timestampS),
      [0, 0.2, 0.3, 2.5, 4.9, 4.9],
    );
    assert.notEqual(frames[4]!.rgb, frames[5]!.rgb, 'timestamps sharing a frame get separate pixels');
  });

  it('seeks ahead for late timestamps and keeps them exact', async () => {
    const frames = await decodeAll(clip, { timestamps: [3.04, 4.2] });
    assert.deepEqual(frames.map(frameId), [30, 42]);
    assert.deepEqual(
      frames.map((f) => f.timestampS),
      [3, 4.2],
    );
  });

  it('samples at a frame rate: the frame nearest each multiple of 1/fps', async () => {
    const two = await decodeAll(clip, { fps: 2 });
    assert.deepEqual(two.map(frameId), [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]);
    const three = await decodeAll(clip, { fps: 3 });
    assert.deepEqual(
      three.map(frameId),
      Array.from({ length: 15 }, (_, k) => Math.round((k * FPS) / 3)),
    );
    assert.deepEqual(
      three.map((f) => f.index),
      [...three.keys()],
    );
    const all = await decodeAll(clip, { fps: 25 });
    assert.equal(all.length, FRAMES, 'never more frames than the video has');
  });

  it('scales inside ffmpeg when asked', async () => {
    const [f] = await decodeAll(clip, { timestamps: [1], size: { width: 80, height: 60 } });
    assert.equal(f!.width, 80);
    assert.equal(f!.height, 60);
    assert.equal(f!.rgb.length, 80 * 60 * 3);
    assert.equal(frameId(f!), 10);
  });

  it('stops when aborted', async () => {
    const abort = new AbortController();
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const f of decodeFrames(clip, { signal: abort.signal })) {
          seen.push(f.index);
          if (f.index === 2) abort.abort();
        }
      })(),
      { name: 'AbortError' },
    );
    assert.deepEqual(seen, [0, 1, 2]);
  });

  it('keeps small objects coloured with yuv444p, unlike yuv420p', async () => {
    // 3×3 squares on a checkerboard, moving one pixel a frame.
    const W = 96;
    const H = 64;
    const colours = [
      [230, 30, 30],
      [30, 200, 40],
      [40, 60, 230],
      [240, 220, 30],
    ];
    const squares = Array.from({ length: 16 }, (_, i) => ({
      x: 6 + (i % 8) * 10,
      y: 8 + Math.floor(i / 8) * 30,
      rgb: colours[i % 4]!,
    }));
    const frames = Array.from({ length: 10 }, (_, k) => {
      const rgb = new Uint8Array(W * H * 3);
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++)
          rgb.fill(((x >> 2) + (y >> 2)) % 2 ? 150 : 100, (y * W + x) * 3, (y * W + x) * 3 + 3);
      for (const s of squares)
        for (let y = s.y; y < s.y + 3; y++) for (let x = s.x + k; x < s.x + k + 3; x++) rgb.set(s.rgb, (y * W + x) * 3);
      return { width: W, height: H, rgb };
    });
    const colourError = async (pixelFormat: 'yuv444p' | 'yuv420p') => {
      const out = path.join(dir, `small-${pixelFormat}.mp4`);
      await encodeVideo(frames, { fps: FPS, out, pixelFormat });
      const decoded = await decodeAll(out);
      let worst = 0;
      decoded.forEach((f, k) => {
        for (const s of squares) {
          for (let c = 0; c < 3; c++) {
            let sum = 0;
            for (let y = s.y; y < s.y + 3; y++)
              for (let x = s.x + k; x < s.x + k + 3; x++) sum += f.rgb[(y * W + x) * 3 + c]!;
            worst = Math.max(worst, Math.abs(sum / 9 - s.rgb[c]!));
          }
        }
      });
      return worst;
    };
    const full = await colourError('yuv444p');
    const subsampled = await colourError('yuv420p');
    assert.ok(full < 25, `yuv444p: worst mean colour error of a 3×3 square ${full.toFixed(1)}`);
    assert.ok(subsampled > 2 * full, `yuv420p ${subsampled.toFixed(1)} vs yuv444p ${full.toFixed(1)}`);
  });

  it('refuses frames of different sizes and empty input', async () => {
    const out = path.join(dir, 'bad.mp4');
    const a = { width: 4, height: 4, rgb: new Uint8Array(48) };
    const b = { width: 6, height: 4, rgb: new Uint8Array(72) };
    await assert.rejects(
      encodeVideo([a, b], { fps: 1, out }),
      (err: unknown) => err instanceof UsageError && /frame 1 is 6×4/.test(err.message),
    );
    await assert.rejects(encodeVideo([], { fps: 1, out }), UsageError);
    await assert.rejects(
      encodeVideo([{ width: 3, height: 3, rgb: new Uint8Array(27) }], { fps: 1, out, pixelFormat: 'yuv420p' }),
      UsageError,
    );
    await assert.rejects(
      encodeVideo([a], { fps: 1, out: path.join(dir, 'no-such-folder', 'x.mp4') }),
      mediaError(/cannot encode .*x\.mp4/),
    );
  });

  describe('bad input', () => {
    it('missing file', async () => {
      await assert.rejects(probe(path.join(dir, 'nope.mp4')), mediaError(/not found/));
      await assert.rejects(decodeAll(path.join(dir, 'nope.mp4')), mediaError(/not found/));
    });

    it('a directory', async () => {
      await mkdir(path.join(dir, 'folder.mp4'));
      await assert.rejects(probe(path.join(dir, 'folder.mp4')), mediaError(/is a directory/));
    });

    it('zero-length file', async () => {
      const file = path.join(dir, 'empty.mp4');
      await writeFile(file, '');
      await assert.rejects(probe(file), mediaError(/empty \(0 bytes\)/));
    });

    it("garbage bytes, with ffmpeg's reason", async () => {
      const file = path.join(dir, 'garbage.mp4');
      await writeFile(file, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)));
      await assert.rejects(
        probe(file),
        mediaError(/cannot read video .*garbage\.mp4: .*Invalid data found when processing input/),
      );
    });

    it('an MP4 cut inside its header', async () => {
      const file = path.join(dir, 'header-cut.mp4');
      const bytes = await readFile(clip);
      for (const cut of [16, 100, 600]) {
        await writeFile(file, bytes.subarray(0, cut));
        await assert.rejects(probe(file), mediaError(/cannot read video .*header-cut\.mp4: \w/));
      }
    });

    it('an MP4 cut in the middle of its frames', async () => {
      const file = path.join(dir, 'truncated.mp4');
      const bytes = await readFile(clip);
      await writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
      await probe(file); // the index at the front still describes the whole clip
      // Depending on the ffmpeg build, decoding fails or stops early; either way it is an error.
      const damaged = /(cannot decode|no frame of|is damaged).*truncated\.mp4|truncated\.mp4 is damaged/;
      await assert.rejects(decodeAll(file, { timestamps: [0, 4.5] }), mediaError(damaged));
      await assert.rejects(decodeAll(file), mediaError(damaged));
    });

    it('a file with audio only', async () => {
      const file = path.join(dir, 'tone.wav');
      await writeFile(file, wav());
      await assert.rejects(probe(file), mediaError(/has no video stream \(it contains audio \(pcm_s16le\)\)/));
      await assert.rejects(decodeAll(file), mediaError(/has no video stream/));
    });

    it('timestamps outside the video', async () => {
      for (const t of [-0.5, 5.5, Number.NaN]) {
        await assert.rejects(decodeAll(clip, { timestamps: [1, t] }), mediaError(/outside .* runs from 0 to 5\.000 s/));
      }
      await assert.rejects(decodeAll(clip, { timestamps: [1], fps: 2 }), UsageError);
      await assert.rejects(decodeAll(clip, { fps: 0 }), UsageError);
    });
  });

  describe('with the bundled binaries only', () => {
    before(() => configureFfmpeg({ ffmpegPath: 'bundled', ffprobePath: 'bundled' }));
    after(() => configureFfmpeg());

    it('encodes, probes and decodes', async () => {
      const b = await ffmpegBinaries();
      assert.equal(b.ffmpeg.source, 'bundled');
      assert.equal(b.ffprobe.source, 'bundled');
      assert.match(b.ffmpeg.path, /@ffmpeg-installer/);
      assert.match(b.ffprobe.path, /@ffprobe-installer/);
      const file = await writeSyntheticVideo(path.join(dir, 'bundled.mp4'), {}, 20);
      const info = await probe(file);
      assert.equal(info.frameCount, 20);
      const frames = await decodeAll(file, { timestamps: [0.05, 1.5, 1.9] });
      assert.deepEqual(frames.map(frameId), [0, 15, 19]);
      assert.deepEqual((await decodeAll(file, { fps: 5 })).map(frameId), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
      await assert.rejects(probe(path.join(dir, 'garbage.mp4')), mediaError(/Invalid data/));
    });
  });
});

import assert from 'node:assert/strict';
import { chmod, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { configureFfmpeg, ffmpegBinaries, versionCachePath } from '../../src/media/ffmpeg-binaries.js';
import { decodeFrames } from '../../src/media/frame-decoder.js';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { scratchDir } from '../helpers/temp-dir.js';

/** A clip in the repository: nothing in this process encodes before the first decode, as in `sieve ask`. */
const CLIP = path.join(REPO_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');

/** Runs the real binary after writing its name and arguments to `log`. */
async function loggingWrapper(file: string, real: string, log: string): Promise<string> {
  const name = path.basename(file);
  await writeFile(file, `#!/bin/sh\necho "${name} $*" >> '${log}'\nexec '${real}' "$@"\n`);
  await chmod(file, 0o755);
  return file;
}

describe('ffmpeg processes per decode', () => {
  let dir: string;
  let remove: () => Promise<void>;
  let log: string;
  const savedCache = process.env.XDG_CACHE_HOME;

  before(async () => {
    ({ dir, remove } = await scratchDir('binaries'));
    const real = await ffmpegBinaries();
    log = path.join(dir, 'calls.log');
    const ffmpeg = await loggingWrapper(path.join(dir, 'ffmpeg'), real.ffmpeg.path, log);
    const ffprobe = await loggingWrapper(path.join(dir, 'ffprobe'), real.ffprobe.path, log);
    process.env.XDG_CACHE_HOME = path.join(dir, 'cache');
    configureFfmpeg({ ffmpegPath: ffmpeg, ffprobePath: ffprobe });
  });
  after(async () => {
    await remove();
    if (savedCache === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = savedCache;
    configureFfmpeg();
  });

  async function callsFor(run: () => Promise<void>): Promise<string[]> {
    await writeFile(log, '');
    await run();
    return (await readFile(log, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(' ').slice(0, 2).join(' '));
  }
  const decode = async () => {
    const times: number[] = [];
    for await (const f of decodeFrames(CLIP, { timestamps: [0.5, 1.5] })) times.push(f.timestampS);
    assert.deepEqual(times, [0.5, 1.5]);
  };

  it('runs -version once per binary and remembers it; no -formats or -encoders', async () => {
    const first = await callsFor(decode);
    assert.deepEqual(first.filter((c) => c.endsWith('-version')).sort(), ['ffmpeg -version', 'ffprobe -version']);
    assert.equal(first.length, 4, `a first decode: two -version, the probe, the decode; got ${first.join(', ')}`);
    assert.ok(!first.some((c) => / -(formats|encoders)$/.test(c)), first.join(', '));

    configureFfmpeg({ ffmpegPath: path.join(dir, 'ffmpeg'), ffprobePath: path.join(dir, 'ffprobe') }); // a new process
    const next = await callsFor(decode);
    assert.deepEqual(
      next.map((c) => c.split(' ')[0]),
      ['ffprobe', 'ffmpeg'],
      `later decodes: the probe and the decode; got ${next.join(', ')}`,
    );
    const cached = JSON.parse(await readFile(versionCachePath(), 'utf8')) as Record<string, { version: string }>;
    assert.ok(cached[path.join(dir, 'ffmpeg')]?.version);
  });

  it('asks again when the binary changes', async () => {
    const later = new Date(Date.now() + 5000);
    await utimes(path.join(dir, 'ffmpeg'), later, later);
    configureFfmpeg({ ffmpegPath: path.join(dir, 'ffmpeg'), ffprobePath: path.join(dir, 'ffprobe') });
    const calls = await callsFor(decode);
    assert.deepEqual(
      calls.filter((c) => c.endsWith('-version')),
      ['ffmpeg -version'],
    );
  });
});

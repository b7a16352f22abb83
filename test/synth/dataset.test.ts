import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runSynth, type SynthOptions } from '../../src/cli/synth-command.js';
import { SieveError, UsageError } from '../../src/errors.js';
import { decodeFrames } from '../../src/media/frame-decoder.js';
import { probe } from '../../src/media/probe.js';
import type { EncodeVideo, QaRecord } from '../../src/synth/dataset.js';
import {
  clipRecords,
  SPLIT_CAPACITY,
  SPLIT_SEED_BASE,
  SPLITS,
  splitOfSeed,
  splitSeed,
  writeSplit,
} from '../../src/synth/dataset.js';
import { renderScene } from '../../src/synth/render.js';
import { makeScene, positionAt } from '../../src/synth/scene.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sieve-synth-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const noEncode: EncodeVideo = async (_frames, { out }) => writeFile(out, 'not a video');

function readJsonl<T>(text: string): T[] {
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as T);
}

describe('splits', () => {
  it('draw seeds from disjoint ranges', () => {
    const ranges = SPLITS.map((s) => [SPLIT_SEED_BASE[s], SPLIT_SEED_BASE[s] + SPLIT_CAPACITY - 1] as const);
    for (let i = 0; i < ranges.length; i++) {
      for (let j = i + 1; j < ranges.length; j++) {
        assert.ok(ranges[i]![1] < ranges[j]![0] || ranges[j]![1] < ranges[i]![0]);
      }
    }
    assert.ok(ranges.every(([, hi]) => hi < 2 ** 32));
    for (const s of SPLITS) {
      assert.equal(splitOfSeed(splitSeed(s, 0)), s);
      assert.equal(splitOfSeed(splitSeed(s, SPLIT_CAPACITY - 1)), s);
    }
    assert.throws(() => splitSeed('val', SPLIT_CAPACITY), UsageError);
    assert.throws(() => splitSeed('val', -1), UsageError);
  });

  it('written splits share no seed and no clip', async () => {
    const seen = new Map<number, string>();
    for (const split of SPLITS) {
      const res = await writeSplit({ split, n: 5, out: path.join(dir, 'disjoint'), encode: noEncode });
      const recs = readJsonl<QaRecord>(await readFile(res.jsonl, 'utf8'));
      for (const r of recs) {
        assert.equal(r.split, split);
        assert.equal(splitOfSeed(r.seed), split);
        const prev = seen.get(r.seed);
        assert.ok(prev === undefined || prev === split, `seed ${r.seed} in ${prev} and ${split}`);
        seen.set(r.seed, split);
      }
    }
    assert.equal(seen.size, 15);
  });
});

describe('writeSplit', () => {
  it('writes real MP4s through src/media/ffmpeg.ts, a JSONL eval can read, scenes and labels', async () => {
    const out = path.join(dir, 'real');
    await runSynth({ split: 'test', n: '2', out, offset: '0', labels: true, concurrency: '2' }, undefined, () => {});
    const recs = readJsonl<QaRecord>(await readFile(path.join(out, 'test.jsonl'), 'utf8'));
    assert.equal(recs.length, 16);
    assert.deepEqual(recs, [
      ...clipRecords('test', SPLIT_SEED_BASE.test).records,
      ...clipRecords('test', SPLIT_SEED_BASE.test + 1).records,
    ]);
    for (const r of recs) {
      assert.deepEqual(Object.keys(r).sort(), [
        'answer',
        'fps',
        'frames',
        'question',
        'seed',
        'split',
        'type',
        'video',
      ]);
    }
    const video = path.join(out, recs[0]!.video);
    const info = await probe(video);
    assert.equal(info.width, 64);
    assert.equal(info.height, 64);
    const decoded = [];
    for await (const f of decodeFrames(video)) decoded.push(f);
    assert.equal(decoded.length, 8);
    // The decoded colour at each visible object's centre is close to what was drawn.
    const scene = makeScene(recs[0]!.seed);
    const { frames } = renderScene(scene);
    for (const o of scene.objects) {
      const { x, y } = positionAt(o, o.start);
      const i = ((y + (o.size >> 1) + (o.shape === 'triangle' ? 2 : 0)) * 64 + x + (o.size >> 1)) * 3;
      const got = decoded[o.start]!.rgb.subarray(i, i + 3);
      const want = frames[o.start]!.rgb.subarray(i, i + 3);
      for (let c = 0; c < 3; c++)
        assert.ok(Math.abs(got[c]! - want[c]!) <= 24, `object ${o.id}: ${[...got]} vs ${[...want]}`);
    }
    const scenes = readJsonl<{ seed: number }>(await readFile(path.join(out, 'test.scenes.jsonl'), 'utf8'));
    assert.deepEqual(
      scenes.map((s) => s.seed),
      [SPLIT_SEED_BASE.test, SPLIT_SEED_BASE.test + 1],
    );
    const labels = await stat(path.join(out, 'labels', `test-${SPLIT_SEED_BASE.test}.ids`));
    assert.equal(labels.size, 8 * 64 * 64);
  });

  it('an offset continues the same seed sequence', async () => {
    const a = await writeSplit({ split: 'train', n: 3, out: path.join(dir, 'a'), encode: noEncode });
    const b = await writeSplit({ split: 'train', n: 2, offset: 1, out: path.join(dir, 'b'), encode: noEncode });
    const ra = readJsonl<QaRecord>(await readFile(a.jsonl, 'utf8'));
    const rb = readJsonl<QaRecord>(await readFile(b.jsonl, 'utf8'));
    assert.deepEqual(rb, ra.slice(8));
  });
});

describe('sieve synth: bad input', () => {
  const base = { n: '1', offset: '0', concurrency: '1' };
  // Each call fails before it would log. The explicit log also stops Biome's noMisusedPromises
  // from matching noEncode against runSynth's `log` parameter.
  const synth = (opts: SynthOptions) => runSynth(opts, noEncode, () => {});

  it('rejects an unknown split with a usage error naming the splits', async () => {
    await assert.rejects(synth({ ...base, split: 'dev', out: path.join(dir, 'x') }), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, /unknown split "dev"/);
      assert.match(err.hint ?? '', /train, val, test/);
      return true;
    });
  });

  it('rejects an output folder that cannot be written', async () => {
    const file = path.join(dir, 'a-file');
    await writeFile(file, 'x');
    await assert.rejects(synth({ ...base, split: 'val', out: path.join(file, 'sub') }), (err: unknown) => {
      assert.ok(err instanceof SieveError);
      assert.match(err.message, /cannot write to output directory .*a-file\/sub \(ENOTDIR\)/);
      assert.match(err.hint ?? '', /--out/);
      return true;
    });
  });

  it('fails (does not hang) on an output folder on a pseudo file system', async () => {
    await assert.rejects(synth({ ...base, split: 'val', out: '/proc/sieve-synth-test/out' }), (err: unknown) => {
      assert.ok(err instanceof SieveError);
      assert.match(err.message, /cannot write to output directory \/proc\/sieve-synth-test\/out \(ENOENT\)/);
      return true;
    });
  });

  it('rejects bad counts and question types', async () => {
    await assert.rejects(synth({ ...base, n: 'ten', split: 'val', out: dir }), /--n must be a non-negative integer/);
    await assert.rejects(synth({ ...base, n: '0', split: 'val', out: dir }), /--n must be a positive integer/);
    await assert.rejects(
      synth({ ...base, split: 'val', out: dir, types: 'colour,size' }),
      /unknown question type\(s\): size/,
    );
    await assert.rejects(synth({ ...base, split: 'val', out: dir, offset: String(SPLIT_CAPACITY) }), UsageError);
  });
});

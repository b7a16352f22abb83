import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runSynth } from '../../src/cli/synth-command.js';
import { UsageError } from '../../src/errors.js';
import { decodeFrames } from '../../src/media/frame-decoder.js';
import { probe } from '../../src/media/probe.js';
import type { QaRecord } from '../../src/synth/dataset.js';
import { clipRecords, SPLIT_SEED_BASE, writeSplit } from '../../src/synth/dataset.js';
import { questionsFor } from '../../src/synth/questions.js';
import { renderScene } from '../../src/synth/render.js';
import type { Scene } from '../../src/synth/scene.js';
import { isVisible, largeObjects, makeScene, positionAt } from '../../src/synth/scene.js';
import { makeSceneV2, V2_FRAMES, V2_SIZES } from '../../src/synth/scene-v2.js';
import { retimeScene, shiftScene } from '../../src/synth/scene-variants.js';
import { QUESTION_TYPES } from '../../src/synth/vocabulary.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sieve-synth-v2-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const seeds = Array.from({ length: 200 }, (_, i) => SPLIT_SEED_BASE.val + i);

/** Every visible object lies inside the frame in every frame it is shown. */
function assertInside(scene: Scene): void {
  for (const o of scene.objects) {
    for (let f = o.start; f <= o.end; f++) {
      const { x, y } = positionAt(o, f);
      assert.ok(x >= -1e-9 && y >= -1e-9, `seed ${scene.seed} object ${o.id} frame ${f}: (${x}, ${y})`);
      assert.ok(x + o.size <= scene.width + 1e-9 && y + o.size <= scene.height + 1e-9);
    }
  }
}

describe('synthetic generator v2', () => {
  it('draws frame counts 4–32, rates, sizes around 64 px and positions off the even grid', () => {
    const scenes = seeds.map(makeSceneV2);
    const frames = new Set(scenes.map((s) => s.frames));
    assert.ok(Math.min(...frames) >= V2_FRAMES.min && Math.max(...frames) <= V2_FRAMES.max);
    assert.ok(frames.size >= 20, `only ${frames.size} distinct frame counts`);
    assert.deepEqual([...new Set(scenes.map((s) => s.width))].sort(), [...new Set(V2_SIZES)].sort());
    assert.ok(new Set(scenes.map((s) => s.fps)).size >= 3);
    const xs = scenes.flatMap((s) => s.objects.map((o) => o.x0));
    assert.ok(
      xs.some((x) => Number.isInteger(x) && x % 2 === 1),
      'no odd integer position',
    );
    assert.ok(
      xs.some((x) => !Number.isInteger(x)),
      'no sub-pixel position',
    );
    for (const s of scenes) {
      assertInside(s);
      assert.equal(s.version, 2);
      assert.deepEqual(
        questionsFor(s).map((q) => q.type),
        [...QUESTION_TYPES],
      );
    }
  });

  it('is a pure function of the seed, and not the v1 scene of that seed', () => {
    const seed = SPLIT_SEED_BASE.test + 3;
    assert.deepEqual(makeSceneV2(seed), makeSceneV2(seed));
    assert.deepEqual(renderScene(makeSceneV2(seed)).frames[0].rgb, renderScene(makeSceneV2(seed)).frames[0].rgb);
    assert.notDeepEqual(makeSceneV2(seed).objects, makeScene(seed).objects);
  });

  it('draws sub-pixel objects with blended edges; the id map names the object covering half a pixel', () => {
    const scene: Scene = {
      ...makeScene(7),
      objects: [
        {
          id: 1,
          kind: 'large',
          colour: 'white',
          rgb: [250, 250, 250],
          shape: 'square',
          size: 16,
          start: 0,
          end: 7,
          x0: 10.5,
          y0: 20.25,
          motion: 'static',
          speed: 0,
        },
      ],
      background: { ...makeScene(7).background, kind: 'gradient', base: [50, 50, 50], alt: [50, 50, 50], noise: 0 },
      antialias: true,
    };
    scene.background.flicker = 0;
    const { frames, idMaps } = renderScene(scene);
    const at = (x: number, y: number) => frames[0].rgb[(y * 64 + x) * 3];
    assert.equal(at(16, 28), 250);
    assert.ok(Math.abs(at(10, 28) - 150) <= 1, `left edge ${at(10, 28)}`); // half covered
    assert.ok(Math.abs(at(16, 20) - 200) <= 1, `top edge ${at(16, 20)}`); // three quarters covered
    assert.equal(at(9, 28), 50);
    assert.equal(idMaps[0][28 * 64 + 10], 1);
    assert.equal(idMaps[0][20 * 64 + 16], 1);
    assert.equal(idMaps[0][36 * 64 + 16], 0); // a quarter covered
  });
});

describe('held-out variants of v1 scenes', () => {
  it('a shift moves every object and its pixels by the same amount and keeps the questions', () => {
    const base = makeScene(SPLIT_SEED_BASE.test + 5);
    const shifted = shiftScene(base, 1);
    const a = renderScene(base).idMaps;
    const b = renderScene(shifted).idMaps;
    for (let f = 0; f < base.frames; f++) {
      for (let y = 0; y < 63; y++) {
        for (let x = 0; x < 63; x++) assert.equal(b[f][(y + 1) * 64 + x + 1], a[f][y * 64 + x]);
      }
    }
    const { records } = clipRecords('test', base.seed, undefined, { shift: 1 });
    assert.deepEqual(records, clipRecords('test', base.seed).records);
  });

  it('16 or 32 frames show the same motion and appearances sampled more often', () => {
    for (const seed of seeds.slice(0, 50)) {
      const base = makeScene(seed);
      for (const k of [2, 4]) {
        const re = retimeScene(base, base.frames * k);
        assert.equal(re.frames, base.frames * k);
        assert.equal(re.fps, base.fps * k);
        for (const [i, o] of base.objects.entries()) {
          const r = re.objects[i];
          for (let f = 0; f < base.frames; f++) {
            assert.equal(isVisible(r, f * k), isVisible(o, f), `seed ${seed} object ${o.id} frame ${f}`);
            if (isVisible(o, f)) assert.deepEqual(positionAt(r, f * k), positionAt(o, f));
          }
        }
        assertInside({ ...re, objects: re.objects.map((o) => ({ ...o, end: Math.min(o.end, re.frames - 1) })) });
        assert.deepEqual(
          largeObjects(re).map((o) => o.motion),
          largeObjects(base).map((o) => o.motion),
        );
      }
    }
  });

  it('rejects variants that make no sense with a usage error', async () => {
    const out = path.join(dir, 'bad');
    const encode = async () => undefined;
    const bad = [
      { version: 2 as const, shift: 1 },
      { version: 2 as const, frames: 16 },
      { frames: 40 },
      { frames: 3 },
      { shift: 20 },
    ];
    for (const variant of bad) {
      await assert.rejects(writeSplit({ split: 'test', n: 1, out, variant, encode }), UsageError);
    }
  });
});

describe('sieve synth --version 2 / --frames / --shift', () => {
  it('writes v2 clips with their own frame count, size and rate, and v1 clips retimed to 16 frames', async () => {
    const v2 = path.join(dir, 'v2');
    await runSynth(
      { split: 'val', n: '2', out: v2, offset: '0', concurrency: '2', version: '2', labels: true },
      undefined,
      () => {},
    );
    const recs = (await readFile(path.join(v2, 'val.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as QaRecord);
    for (const seed of [SPLIT_SEED_BASE.val, SPLIT_SEED_BASE.val + 1]) {
      const scene = makeSceneV2(seed);
      const r = recs.find((x) => x.seed === seed);
      assert.ok(r);
      assert.equal(r.frames, scene.frames);
      const info = await probe(path.join(v2, r.video));
      assert.equal(info.width, scene.width);
      let n = 0;
      for await (const _ of decodeFrames(path.join(v2, r.video))) n++;
      assert.equal(n, scene.frames);
    }

    const v16 = path.join(dir, 'v16');
    await runSynth(
      { split: 'test', n: '1', out: v16, offset: '0', concurrency: '1', frames: '16', shift: '1' },
      undefined,
      () => {},
    );
    const r16 = JSON.parse((await readFile(path.join(v16, 'test.jsonl'), 'utf8')).split('\n')[0]) as QaRecord;
    assert.equal(r16.frames, 16);
    assert.equal(r16.fps, 8);
    assert.equal(r16.answer, clipRecords('test', SPLIT_SEED_BASE.test).records[0].answer);
    await assert.rejects(
      runSynth({ split: 'test', n: '1', out: v16, offset: '0', concurrency: '1', version: '3' }, undefined, () => {}),
      /unknown --version "3"/,
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Prng } from '../../src/synth/prng.js';
import { questionsFor } from '../../src/synth/questions.js';
import { covers, renderScene } from '../../src/synth/render.js';
import type { Scene, SceneObject } from '../../src/synth/scene.js';
import { CLIP_FRAMES, isVisible, largeObjects, makeScene, positionAt, quadrantOf } from '../../src/synth/scene.js';
import { ANSWERS, COLOUR_RGB, QUESTION_TYPES, vocabularyWords } from '../../src/synth/vocabulary.js';

function obj(o: Partial<SceneObject> & Pick<SceneObject, 'id' | 'colour' | 'shape'>): SceneObject {
  return {
    kind: o.shape === 'dot' ? 'dot' : 'large',
    rgb: [...COLOUR_RGB[o.colour]] as [number, number, number],
    size: o.shape === 'dot' ? 4 : 16,
    start: 0,
    end: CLIP_FRAMES - 1,
    x0: 0,
    y0: 0,
    motion: 'static',
    speed: 0,
    ...o,
  };
}

/** A hand-made scene: red circle static top left (frames 0–7), blue square moving right from frame 3,
 *  green triangle static bottom right (frames 1–4), a yellow dot. */
function handMade(seed = 12345): Scene {
  return {
    seed,
    width: 64,
    height: 64,
    frames: 8,
    fps: 4,
    background: {
      kind: 'checker',
      base: [60, 60, 60],
      alt: [80, 80, 80],
      period: 4,
      orientation: 0,
      noise: 0,
      flicker: 0,
    },
    objects: [
      obj({ id: 1, colour: 'red', shape: 'circle', x0: 4, y0: 4 }),
      obj({ id: 2, colour: 'blue', shape: 'square', x0: 0, y0: 24, start: 3, end: 7, motion: 'right', speed: 4 }),
      obj({ id: 3, colour: 'green', shape: 'triangle', x0: 44, y0: 44, start: 1, end: 4 }),
      obj({ id: 4, colour: 'yellow', shape: 'dot', x0: 40, y0: 8 }),
    ],
  };
}

describe('synthetic generator: determinism', () => {
  it('the PRNG is a pure function of its seed and stays in range', () => {
    const a = new Prng(7);
    const b = new Prng(7);
    const xs = Array.from({ length: 1000 }, () => a.next());
    assert.deepEqual(
      xs,
      Array.from({ length: 1000 }, () => b.next()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.notDeepEqual(
      xs.slice(0, 10),
      Array.from({ length: 10 }, () => new Prng(8).next()),
    );
    assert.throws(() => new Prng(-1), RangeError);
    assert.throws(() => new Prng(2 ** 32), RangeError);
  });

  it('the same seed gives the same scene, pixels and questions; another seed does not', () => {
    for (const seed of [0, 1, 999, 2_000_000_123]) {
      const s1 = makeScene(seed);
      const s2 = makeScene(seed);
      assert.deepEqual(s1, s2);
      const r1 = renderScene(s1);
      const r2 = renderScene(s2);
      for (const [i, f] of r1.frames.entries()) assert.deepEqual(f.rgb, r2.frames[i]!.rgb);
      for (const [i, m] of r1.idMaps.entries()) assert.deepEqual(m, r2.idMaps[i]);
      assert.deepEqual(questionsFor(s1), questionsFor(s2));
    }
    assert.notDeepEqual(makeScene(5).objects, makeScene(6).objects);
  });
});

describe('synthetic generator: answers correct by construction (hand-made scene)', () => {
  const scene = handMade();
  const byType = new Map(questionsFor(scene).map((q) => [q.type, q]));

  it('asks one question of every type', () => {
    assert.deepEqual([...byType.keys()], [...QUESTION_TYPES]);
  });

  it('single-frame detail: colour of the unique shape, shape of a colour, quadrant of a static object', () => {
    const colour = byType.get('colour')!;
    const shape = colour.question.match(/^what colour is the (\w+) \?$/)![1];
    assert.equal(colour.answer, { circle: 'red', square: 'blue', triangle: 'green' }[shape!]);
    const sh = byType.get('shape')!;
    const c = sh.question.match(/^what shape is the (\w+) object \?$/)![1];
    assert.equal(sh.answer, { red: 'circle', blue: 'square', green: 'triangle' }[c!]);
    const pos = byType.get('position')!;
    const pc = pos.question.match(/^where is the (\w+) object \?$/)![1];
    assert.equal(pos.answer, { red: 'top left', green: 'bottom right' }[pc!]);
  });

  it('several frames: count, order, direction, existence', () => {
    assert.equal(byType.get('count')!.answer, 'three');
    const order = byType.get('order')!;
    const [, a, b] = order.question.match(/^which appeared first , the (\w+) object or the (\w+) object \?$/)!;
    const start: Record<string, number> = { red: 0, green: 1, blue: 3 };
    assert.ok(Math.abs(start[a!]! - start[b!]!) >= 2, 'the two objects appear at least two frames apart');
    assert.equal(order.answer, start[a!]! < start[b!]! ? a : b);
    assert.equal(byType.get('direction')!.question, 'which way does the blue object move ?');
    assert.equal(byType.get('direction')!.answer, 'right');
    const ex = byType.get('exists')!;
    const [, ec, es] = ex.question.match(/^is there a (\w+) (\w+) in the clip \?$/)!;
    const present = scene.objects.some((o) => o.colour === ec && o.shape === es);
    assert.equal(ex.answer, present ? 'yes' : 'no');
  });

  it('small object: the colour of the dot', () => {
    assert.deepEqual(byType.get('small'), {
      type: 'small',
      question: 'what colour is the small dot ?',
      answer: 'yellow',
    });
  });

  it('existence answers both ways over many seeds, with hard negatives that share a colour or a shape', () => {
    let yes = 0;
    let hard = 0;
    for (let seed = 0; seed < 400; seed++) {
      const s = { ...handMade(seed) };
      const q = questionsFor(s).find((x) => x.type === 'exists')!;
      const [, c, sh] = q.question.match(/^is there a (\w+) (\w+) in the clip \?$/)!;
      const present = s.objects.some((o) => o.colour === c && o.shape === sh);
      assert.equal(q.answer, present ? 'yes' : 'no');
      if (present) yes++;
      else if (s.objects.some((o) => o.kind === 'large' && (o.colour === c || o.shape === sh))) hard++;
    }
    assert.ok(yes > 150 && yes < 250, `yes ${yes}/400`);
    assert.ok(hard > 60, `hard negatives ${hard}`);
  });

  it('renders each object where the scene says, in its colour, only in its visible frames', () => {
    const { frames, idMaps } = renderScene(scene);
    assert.equal(frames.length, 8);
    for (const o of scene.objects) {
      for (let f = 0; f < 8; f++) {
        const { x, y } = positionAt(o, f);
        const cx = x + Math.floor(o.size / 2);
        const cy = y + Math.floor(o.size / 2) + (o.shape === 'triangle' ? 3 : 0);
        const i = cy * 64 + cx;
        if (isVisible(o, f)) {
          assert.equal(idMaps[f]![i], o.id, `object ${o.id} frame ${f}`);
          assert.deepEqual([...frames[f]!.rgb.subarray(i * 3, i * 3 + 3)], o.rgb);
        } else {
          assert.notEqual(idMaps[f]![i], o.id);
        }
      }
    }
    // The blue square moves 4 px right per frame.
    const blue = scene.objects[1]!;
    assert.deepEqual(positionAt(blue, 5), { x: 8, y: 24 });
    assert.equal(idMaps[5]![24 * 64 + 8], 2);
    assert.equal(idMaps[5]![24 * 64 + 7], 0);
    // Shapes: a circle misses its bounding-box corner, a triangle its top corners, a square fills it.
    const red = scene.objects[0]!;
    assert.equal(covers(red, 4, 4, 4, 4), false);
    assert.equal(covers(scene.objects[2]!, 44, 44, 44, 44), false);
    assert.equal(covers(scene.objects[2]!, 44, 44, 52, 58), true);
    assert.equal(covers(blue, 0, 24, 0, 24), true);
    assert.equal(frames[0]!.timestampS, 0);
    assert.equal(frames[3]!.timestampS, 0.75);
  });
});

describe('synthetic generator: invariants over many seeds', () => {
  const words = new Set(vocabularyWords());
  const seeds = Array.from({ length: 300 }, (_, i) => 1_000_000_000 + i * 7);

  it('every clip has every question type, answers from the closed vocabulary, questions in the vocabulary', () => {
    const answersByType = new Map<string, Map<string, number>>();
    for (const seed of seeds) {
      const qs = questionsFor(makeScene(seed));
      assert.deepEqual(
        qs.map((q) => q.type),
        [...QUESTION_TYPES],
      );
      for (const q of qs) {
        assert.ok(ANSWERS.includes(q.answer), q.answer);
        for (const w of q.question.split(' ')) assert.ok(words.has(w), `"${w}" is not in the vocabulary`);
        const m = answersByType.get(q.type) ?? new Map<string, number>();
        m.set(q.answer, (m.get(q.answer) ?? 0) + 1);
        answersByType.set(q.type, m);
      }
    }
    // No type is dominated by one answer (a majority guess stays far from the 90 % bar).
    for (const [type, m] of answersByType) {
      const top = Math.max(...m.values());
      assert.ok(top / seeds.length < 0.6, `${type}: ${JSON.stringify([...m])}`);
    }
    assert.equal(answersByType.get('direction')!.size, 4);
    assert.equal(answersByType.get('position')!.size, 4);
    assert.deepEqual([...answersByType.get('count')!.keys()].sort(), ['four', 'three', 'two']);
  });

  it('objects stay inside the frame, never overlap, and static ones sit clearly in a quadrant', () => {
    for (const seed of seeds) {
      const scene = makeScene(seed);
      const { idMaps } = renderScene(scene);
      for (const o of scene.objects) {
        for (let f = o.start; f <= o.end; f++) {
          const { x, y } = positionAt(o, f);
          assert.ok(x >= 0 && y >= 0 && x + o.size <= 64 && y + o.size <= 64, `seed ${seed} object ${o.id} frame ${f}`);
        }
        // Every visible object is drawn in full: pixel count equals its own shape's area.
        for (let f = o.start; f <= o.end; f++) {
          const n = idMaps[f]!.reduce((acc, v) => acc + (v === o.id ? 1 : 0), 0);
          const { x, y } = positionAt(o, f);
          let area = 0;
          for (let py = y; py < y + o.size; py++)
            for (let px = x; px < x + o.size; px++) if (covers(o, x, y, px, py)) area++;
          assert.equal(n, area, `seed ${seed} object ${o.id} frame ${f} is occluded`);
        }
      }
      for (const o of largeObjects(scene).filter((x) => x.motion === 'static')) {
        const cx = o.x0 + o.size / 2;
        const cy = o.y0 + o.size / 2;
        assert.ok(Math.abs(cx - 32) >= 6 && Math.abs(cy - 32) >= 6);
        assert.ok(quadrantOf(o).length > 0);
      }
      for (const o of largeObjects(scene).filter((x) => x.motion !== 'static')) {
        assert.ok((o.end - o.start) * o.speed >= 8, 'a moving object travels at least 8 px');
      }
    }
  });
});

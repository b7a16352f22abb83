/**
 * Questions about a scene, one per question type, with answers correct by construction. Question
 * texts use only words of the closed vocabulary (vocabulary.ts), separated by single spaces.
 */
import { Prng } from './prng.js';
import type { Scene, SceneObject } from './scene.js';
import { largeObjects, orderGap, quadrantOf } from './scene.js';
import type { QuestionType } from './vocabulary.js';
import { COLOURS, COUNT_WORDS, QUESTION_TYPES, SHAPES } from './vocabulary.js';

export interface Question {
  type: QuestionType;
  question: string;
  answer: string;
}

type Asker = (scene: Scene, prng: Prng) => Question | null;

const ask: Record<QuestionType, Asker> = {
  colour(scene, prng) {
    const large = largeObjects(scene);
    const unique = large.filter((o) => large.filter((p) => p.shape === o.shape).length === 1);
    if (unique.length === 0) return null;
    const o = prng.pick(unique);
    return { type: 'colour', question: `what colour is the ${o.shape} ?`, answer: o.colour };
  },
  shape(scene, prng) {
    const o = prng.pick(largeObjects(scene));
    return { type: 'shape', question: `what shape is the ${o.colour} object ?`, answer: o.shape };
  },
  position(scene, prng) {
    const statics = largeObjects(scene).filter((o) => o.motion === 'static');
    if (statics.length === 0) return null;
    const o = prng.pick(statics);
    return {
      type: 'position',
      question: `where is the ${o.colour} object ?`,
      answer: quadrantOf(o, scene.width, scene.height),
    };
  },
  count(scene) {
    const n = largeObjects(scene).length;
    return { type: 'count', question: 'how many large objects appear in the clip ?', answer: COUNT_WORDS[n - 1] };
  },
  order(scene, prng) {
    const large = largeObjects(scene);
    const pairs: [SceneObject, SceneObject][] = [];
    const gap = orderGap(scene.frames);
    for (const a of large) for (const b of large) if (b.start - a.start >= gap) pairs.push([a, b]);
    if (pairs.length === 0) return null;
    const [first, later] = prng.pick(pairs);
    const [x, y] = prng.bool() ? [first, later] : [later, first];
    return {
      type: 'order',
      question: `which appeared first , the ${x.colour} object or the ${y.colour} object ?`,
      answer: first.colour,
    };
  },
  direction(scene, prng) {
    const moving = largeObjects(scene).filter((o) => o.motion !== 'static');
    if (moving.length === 0) return null;
    const o = prng.pick(moving);
    return { type: 'direction', question: `which way does the ${o.colour} object move ?`, answer: o.motion };
  },
  exists(scene, prng) {
    const large = largeObjects(scene);
    const present = (c: string, s: string) => large.some((o) => o.colour === c && o.shape === s);
    if (prng.bool()) {
      const o = prng.pick(large);
      return { type: 'exists', question: `is there a ${o.colour} ${o.shape} in the clip ?`, answer: 'yes' };
    }
    // Absent combinations; half of the time one whose colour or shape does appear (needs binding).
    const absent: [string, string][] = [];
    const hard: [string, string][] = [];
    for (const c of COLOURS) {
      for (const s of SHAPES) {
        if (present(c, s)) continue;
        absent.push([c, s]);
        if (large.some((o) => o.colour === c || o.shape === s)) hard.push([c, s]);
      }
    }
    const [c, s] = hard.length > 0 && prng.bool() ? prng.pick(hard) : prng.pick(absent);
    return { type: 'exists', question: `is there a ${c} ${s} in the clip ?`, answer: 'no' };
  },
  small(scene) {
    const dot = scene.objects.find((o) => o.kind === 'dot');
    if (!dot) return null;
    return { type: 'small', question: 'what colour is the small dot ?', answer: dot.colour };
  },
};

/** One question per type that the scene supports, in QUESTION_TYPES order. Deterministic. */
export function questionsFor(scene: Scene, types: readonly QuestionType[] = QUESTION_TYPES): Question[] {
  const prng = new Prng((scene.seed ^ 0x27d4eb2f) >>> 0);
  const out: Question[] = [];
  for (const type of QUESTION_TYPES) {
    // Draw for every type, so the questions of one type do not depend on which others were asked.
    const q = ask[type](scene, prng);
    if (q && types.includes(type)) out.push(q);
  }
  return out;
}

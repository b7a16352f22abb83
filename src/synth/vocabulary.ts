/**
 * The closed vocabulary of the synthetic video QA task: every word a question, an answer or the
 * demo model's chat template can contain. The demo model's word-level tokenizer is built from this
 * list (tools/train), so adding a word here means retraining the model.
 */

export const COLOURS = ['red', 'green', 'blue', 'yellow', 'white', 'purple'] as const;
export type Colour = (typeof COLOURS)[number];

/** Nominal RGB of each colour; the generator jitters it per clip. */
export const COLOUR_RGB: Record<Colour, readonly [number, number, number]> = {
  red: [225, 35, 35],
  green: [40, 205, 60],
  blue: [45, 80, 235],
  yellow: [235, 220, 40],
  white: [245, 245, 245],
  purple: [165, 50, 215],
};

/** Shapes of the large objects. The small object is always a "dot" (a 4×4 px square). */
export const SHAPES = ['square', 'circle', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

export const DIRECTIONS = ['left', 'right', 'up', 'down'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export const QUADRANTS = ['top left', 'top right', 'bottom left', 'bottom right'] as const;
export type Quadrant = (typeof QUADRANTS)[number];

export const COUNT_WORDS = ['one', 'two', 'three', 'four'] as const;

export const QUESTION_TYPES = [
  'colour', // one frame's detail: colour of the object with a given shape
  'shape', // one frame's detail: shape of the object with a given colour
  'position', // where a static object is (quadrant)
  'count', // several frames: how many large objects appear over the whole clip
  'order', // several frames: which of two objects appeared first
  'direction', // several frames: which way an object moves
  'exists', // several frames + binding: did a colour+shape combination ever appear
  'small', // small object: colour of the 4×4 px dot
] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];

/** Every answer the task can have (answers of several words are space-separated). */
export const ANSWERS: readonly string[] = [
  ...COLOURS,
  ...SHAPES,
  ...DIRECTIONS,
  ...QUADRANTS,
  ...COUNT_WORDS,
  'yes',
  'no',
];

/** Words used by the question templates (besides the answer words). */
export const QUESTION_WORDS = [
  'what',
  'colour',
  'is',
  'the',
  'shape',
  'object',
  'where',
  'how',
  'many',
  'large',
  'objects',
  'appear',
  'in',
  'clip',
  'which',
  'appeared',
  'first',
  ',',
  'or',
  'way',
  'does',
  'move',
  'there',
  'a',
  'small',
  'dot',
  '?',
] as const;

/** Words of the demo model's chat template. Frame markers print the 1-based frame index. */
export const TEMPLATE_WORDS = ['user', ':', 'assistant', 'frame'] as const;
/** Frame indices the vocabulary covers (the demo model is trained on 8 frames). */
export const MAX_FRAME_INDEX = 32;

/** All non-special words of the demo vocabulary, deduplicated, in a stable order. */
export function vocabularyWords(): string[] {
  const words: string[] = [];
  const seen = new Set<string>();
  const add = (w: string) => {
    for (const part of w.split(' ')) {
      if (!seen.has(part)) {
        seen.add(part);
        words.push(part);
      }
    }
  };
  TEMPLATE_WORDS.forEach(add);
  for (let i = 1; i <= MAX_FRAME_INDEX; i++) add(String(i));
  QUESTION_WORDS.forEach(add);
  ANSWERS.forEach(add);
  return words;
}

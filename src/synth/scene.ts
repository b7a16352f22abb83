/**
 * A synthetic clip's scene: a textured background and a few coloured shapes, each visible for an
 * interval of frames, static or moving in a straight line, plus one small dot. A scene is a pure
 * function of its seed; rendering and questions are pure functions of the scene.
 */
import { Prng } from './prng.js';
import type { Colour, Direction, Quadrant, Shape } from './vocabulary.js';
import { COLOUR_RGB, COLOURS, DIRECTIONS, SHAPES } from './vocabulary.js';

export const CLIP_WIDTH = 64;
export const CLIP_HEIGHT = 64;
export const CLIP_FRAMES = 8;
export const CLIP_FPS = 4;
/** Side of the small dot in pixels. */
export const DOT_SIZE = 4;
/** Minimum number of frames an object is visible. */
export const MIN_VISIBLE = 3;
/** Empty pixels kept between any two objects in every frame. */
const MARGIN = 2;
/** A static large object's centre is at least this far from the image's middle lines. */
const QUADRANT_CLEARANCE = 6;

export type BackgroundKind = 'noise' | 'stripes' | 'checker' | 'gradient' | 'blobs';

export interface Background {
  kind: BackgroundKind;
  base: [number, number, number];
  /** Second colour of the texture. */
  alt: [number, number, number];
  /** Stripe period / checker cell in pixels. */
  period: number;
  /** 0 horizontal, 1 vertical, 2 diagonal (stripes, gradient). */
  orientation: 0 | 1 | 2;
  /** Amplitude of the static per-pixel noise. */
  noise: number;
  /** Amplitude of the per-frame (temporal) noise. */
  flicker: number;
}

export interface SceneObject {
  /** Value in the id maps: 1-based, in this array's order. */
  id: number;
  kind: 'large' | 'dot';
  colour: Colour;
  rgb: [number, number, number];
  shape: Shape | 'dot';
  /** Side (square, triangle) or diameter (circle) in pixels. */
  size: number;
  /** First and last visible frame, 0-based, inclusive. */
  start: number;
  end: number;
  /** Top-left corner at frame `start`. */
  x0: number;
  y0: number;
  motion: Direction | 'static';
  /** Pixels per frame. */
  speed: number;
}

export interface Scene {
  seed: number;
  width: number;
  height: number;
  frames: number;
  fps: number;
  background: Background;
  objects: SceneObject[];
  /** Generator version (absent = 1). */
  version?: 2;
  /** Objects drawn with anti-aliased edges (fractional positions or sizes). */
  antialias?: boolean;
  /** Standard deviation of the per-frame sensor noise in grey levels (v2). */
  sensorNoise?: number;
  /** A 3×3 Gaussian blur over every frame, as a soft lens would (v2). */
  blur?: boolean;
  /** How the clip is compressed (v2; v1 clips use the encoder's defaults). */
  encoding?: { crf: number; pixelFormat: 'yuv444p' | 'yuv420p' };
}

const STEP: Record<Direction, [number, number]> = {
  left: [-1, 0],
  right: [1, 0],
  up: [0, -1],
  down: [0, 1],
};

/** Top-left corner of an object at frame f (extrapolated outside its visible interval). */
export function positionAt(obj: SceneObject, f: number): { x: number; y: number } {
  if (obj.motion === 'static') return { x: obj.x0, y: obj.y0 };
  const [dx, dy] = STEP[obj.motion];
  const t = f - obj.start;
  return { x: obj.x0 + dx * obj.speed * t, y: obj.y0 + dy * obj.speed * t };
}

export function isVisible(obj: SceneObject, f: number): boolean {
  return f >= obj.start && f <= obj.end;
}

/** Quadrant of a static object's centre. */
export function quadrantOf(obj: SceneObject, width = CLIP_WIDTH, height = CLIP_HEIGHT): Quadrant {
  const { x, y } = positionAt(obj, obj.start);
  const cx = x + obj.size / 2;
  const cy = y + obj.size / 2;
  const top = cy < height / 2;
  const left = cx < width / 2;
  return `${top ? 'top' : 'bottom'} ${left ? 'left' : 'right'}` as Quadrant;
}

/** Frames between two objects' first appearances for an "order" question: 2 of 8, scaled with the clip. */
export function orderGap(frames: number): number {
  return Math.max(1, Math.round(frames / 4));
}

export function largeObjects(scene: Scene): SceneObject[] {
  return scene.objects.filter((o) => o.kind === 'large');
}

export function even(prng: Prng, lo: number, hi: number): number {
  const a = Math.ceil(lo / 2);
  const b = Math.floor(hi / 2);
  if (b < a) throw new RangeError('empty range');
  return 2 * prng.int(a, b);
}

function clampByte(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

export function sampleBackground(prng: Prng): Background {
  const grey = prng.int(45, 105);
  const tint = (): number => prng.int(-14, 14);
  const base: [number, number, number] = [grey + tint(), grey + tint(), grey + tint()].map(clampByte) as [
    number,
    number,
    number,
  ];
  const delta = prng.int(10, 26) * (prng.bool() ? 1 : -1);
  const alt = base.map((c) => clampByte(c + delta + prng.int(-5, 5))) as [number, number, number];
  return {
    kind: prng.pick(['noise', 'stripes', 'checker', 'gradient'] as const),
    base,
    alt,
    period: prng.int(3, 9),
    orientation: prng.pick([0, 1, 2] as const),
    noise: prng.int(4, 14),
    flicker: prng.int(1, 4),
  };
}

export function jitterRgb(prng: Prng, colour: Colour): [number, number, number] {
  return COLOUR_RGB[colour].map((c) => clampByte(c + prng.int(-12, 12))) as [number, number, number];
}

/** Boxes (with margin) of two objects intersect in some frame where both are visible. */
export function collides(a: SceneObject, b: SceneObject, frames: number, margin = MARGIN): boolean {
  for (let f = 0; f < frames; f++) {
    if (!isVisible(a, f) || !isVisible(b, f)) continue;
    const pa = positionAt(a, f);
    const pb = positionAt(b, f);
    if (
      pa.x < pb.x + b.size + margin &&
      pb.x < pa.x + a.size + margin &&
      pa.y < pb.y + b.size + margin &&
      pb.y < pa.y + a.size + margin
    ) {
      return true;
    }
  }
  return false;
}

function placeLarge(
  prng: Prng,
  base: Omit<SceneObject, 'x0' | 'y0' | 'motion' | 'speed'>,
  moving: boolean,
  width: number,
  height: number,
): SceneObject {
  const { size, start, end } = base;
  if (!moving) {
    // Static: centre clearly inside one quadrant.
    const lowMax = width / 2 - QUADRANT_CLEARANCE - size / 2;
    const highMin = width / 2 + QUADRANT_CLEARANCE - size / 2;
    const x0 = prng.bool() ? even(prng, 0, lowMax) : even(prng, highMin, width - size);
    const lowMaxY = height / 2 - QUADRANT_CLEARANCE - size / 2;
    const highMinY = height / 2 + QUADRANT_CLEARANCE - size / 2;
    const y0 = prng.bool() ? even(prng, 0, lowMaxY) : even(prng, highMinY, height - size);
    return { ...base, x0, y0, motion: 'static', speed: 0 };
  }
  const motion = prng.pick(DIRECTIONS);
  const speed = prng.pick([4, 6]);
  const travel = speed * (end - start);
  const [dx, dy] = STEP[motion];
  let x0: number;
  let y0: number;
  if (dx !== 0) {
    x0 = dx > 0 ? even(prng, 0, width - size - travel) : even(prng, travel, width - size);
    y0 = even(prng, 0, height - size);
  } else {
    y0 = dy > 0 ? even(prng, 0, height - size - travel) : even(prng, travel, height - size);
    x0 = even(prng, 0, width - size);
  }
  return { ...base, x0, y0, motion, speed };
}

/**
 * How many large objects, their colours (one more for the dot), shapes and first frames; at least one
 * pair of objects starts `gap` or more frames apart (for the order question). Null when no such starts
 * were drawn.
 */
export function drawCast(prng: Prng, frames: number, minVisible: number, gap: number) {
  const nLarge = prng.int(2, 4);
  const colours = prng.sample(COLOURS, nLarge + 1);
  const shapes: Shape[] =
    nLarge <= SHAPES.length
      ? prng.sample(SHAPES, nLarge)
      : prng.shuffle([...SHAPES, ...prng.sample(SHAPES, nLarge - SHAPES.length)]);
  for (let attempt = 0; attempt <= 51; attempt++) {
    const starts = Array.from({ length: nLarge }, () => prng.int(0, frames - minVisible - 1));
    if (Math.max(...starts) - Math.min(...starts) >= gap) return { nLarge, colours, shapes, starts };
  }
  return null;
}

function tryScene(prng: Prng, seed: number): Scene | null {
  const width = CLIP_WIDTH;
  const height = CLIP_HEIGHT;
  const frames = CLIP_FRAMES;
  const cast = drawCast(prng, frames, MIN_VISIBLE, 2);
  if (!cast) return null;
  const { nLarge, colours, shapes, starts } = cast;
  // The first object moves, the second is static, the others either.
  const moving = Array.from({ length: nLarge }, (_, i) => (i === 0 ? true : i === 1 ? false : prng.bool()));
  const objects: SceneObject[] = [];
  for (let i = 0; i < nLarge; i++) {
    const start = starts[i];
    const length = prng.int(MIN_VISIBLE + (moving[i] ? 1 : 0), frames - start);
    if (start + length > frames) return null;
    const size = prng.pick([14, 16, 18]);
    const colour = colours[i];
    const base = {
      id: 0,
      kind: 'large' as const,
      colour,
      rgb: jitterRgb(prng, colour),
      shape: shapes[i],
      size,
      start,
      end: start + length - 1,
    };
    let placed: SceneObject | null = null;
    for (let t = 0; t < 60 && !placed; t++) {
      const cand = placeLarge(prng, base, moving[i], width, height);
      if (!objects.some((o) => collides(o, cand, frames))) placed = cand;
    }
    if (!placed) return null;
    objects.push(placed);
  }
  const dotColour = colours[nLarge];
  let dot: SceneObject | null = null;
  for (let t = 0; t < 60 && !dot; t++) {
    const cand: SceneObject = {
      id: 0,
      kind: 'dot',
      colour: dotColour,
      rgb: jitterRgb(prng, dotColour),
      shape: 'dot',
      size: DOT_SIZE,
      start: 0,
      end: frames - 1,
      x0: even(prng, 2, width - DOT_SIZE - 2),
      y0: even(prng, 2, height - DOT_SIZE - 2),
      motion: 'static',
      speed: 0,
    };
    if (!objects.some((o) => collides(o, cand, frames))) dot = cand;
  }
  if (!dot) return null;
  const ordered = [...prng.shuffle(objects), dot].map((o, i) => ({ ...o, id: i + 1 }));
  return { seed, width, height, frames, fps: CLIP_FPS, background: sampleBackground(prng), objects: ordered };
}

/** The scene of a seed (deterministic). */
export function makeScene(seed: number): Scene {
  const prng = new Prng(seed);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const scene = tryScene(prng, seed);
    if (scene) return scene;
  }
  throw new Error(`could not lay out a scene for seed ${seed}`);
}

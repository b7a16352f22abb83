/**
 * Version 2 of the synthetic scenes (docs/demo-model.md): the v1 task and vocabulary, but objects at
 * any integer or sub-pixel position and size (drawn anti-aliased), 4–32 frames at 2–8 fps, frame sizes
 * around the native 64 px, more background textures, sensor noise, mild blur and varied compression.
 * A model trained on v1 recognised shapes by how the 8-px patches cut them; v2 takes that away.
 */
import { Prng } from './prng.js';
import type { Background, Scene, SceneObject } from './scene.js';
import { collides, drawCast, jitterRgb, orderGap, sampleBackground } from './scene.js';
import type { Direction } from './vocabulary.js';
import { DIRECTIONS } from './vocabulary.js';

export const V2_FRAMES = { min: 4, max: 32 } as const;
export const V2_SIZES = [56, 64, 64, 64, 72] as const;
const V2_FPS = [2, 4, 6, 8] as const;

const STEP: Record<Direction, [number, number]> = { left: [-1, 0], right: [1, 0], up: [0, -1], down: [0, 1] };

/** Frames an object stays visible at least: 3 of 8, scaled with the clip. */
export function minVisible(frames: number): number {
  return Math.max(2, Math.ceil((3 * frames) / 8));
}

interface Layout {
  prng: Prng;
  /** Sub-pixel positions and sizes (else whole pixels). */
  subpixel: boolean;
  width: number;
  height: number;
  /** Frame size over the native 64 px. */
  scale: number;
}

function coordinate(l: Layout, lo: number, hi: number): number {
  if (hi < lo) throw new RangeError('empty range');
  return l.subpixel ? l.prng.real(lo, hi) : l.prng.int(Math.ceil(lo), Math.floor(hi));
}

function length(l: Layout, nativePx: number): number {
  const v = nativePx * l.scale;
  return l.subpixel ? v : Math.max(1, Math.round(v));
}

function placeLarge(
  l: Layout,
  base: Omit<SceneObject, 'x0' | 'y0' | 'motion' | 'speed'>,
  moving: boolean,
  frames: number,
) {
  const { size, start, end } = base;
  const { width, height, prng } = l;
  if (!moving) {
    const clearance = 6 * l.scale;
    const axis = (extent: number) =>
      prng.bool()
        ? coordinate(l, 0, extent / 2 - clearance - size / 2)
        : coordinate(l, extent / 2 + clearance - size / 2, extent - size);
    return { ...base, x0: axis(width), y0: axis(height), motion: 'static' as const, speed: 0 };
  }
  const motion = prng.pick(DIRECTIONS);
  // v1 moves 4–6 px a frame over 8 frames; the same distance over the clip at any frame count.
  // At most the whole frame over its visible span (frames of 29–32 would round past it).
  const perFrame = Math.min((prng.real(3, 6) * 8 * l.scale) / frames, (width - size - 1) / Math.max(1, end - start));
  const speed = l.subpixel ? perFrame : Math.max(1, Math.floor(perFrame));
  const travel = speed * (end - start);
  const [dx, dy] = STEP[motion];
  const along = (extent: number, d: number) =>
    d > 0 ? coordinate(l, 0, extent - size - travel) : coordinate(l, travel, extent - size);
  const x0 = dx !== 0 ? along(width, dx) : coordinate(l, 0, width - size);
  const y0 = dy !== 0 ? along(height, dy) : coordinate(l, 0, height - size);
  return { ...base, x0, y0, motion, speed };
}

function tryScene(prng: Prng, seed: number): Scene | null {
  const width = prng.pick(V2_SIZES);
  const l: Layout = { prng, subpixel: prng.bool(), width, height: width, scale: width / 64 };
  const frames = prng.int(V2_FRAMES.min, V2_FRAMES.max);
  const visible = minVisible(frames);
  const cast = drawCast(prng, frames, visible, orderGap(frames));
  if (!cast) return null;
  const { nLarge, colours, shapes, starts } = cast;
  const moving = Array.from({ length: nLarge }, (_, i) => (i === 0 ? true : i === 1 ? false : prng.bool()));
  const margin = 2 * l.scale;
  const objects: SceneObject[] = [];
  for (let i = 0; i < nLarge; i++) {
    const start = starts[i];
    const span = prng.int(visible + (moving[i] ? 1 : 0), frames - start);
    const base = {
      id: 0,
      kind: 'large' as const,
      colour: colours[i],
      rgb: jitterRgb(prng, colours[i]),
      shape: shapes[i],
      size: length(l, l.subpixel ? prng.real(13, 19) : prng.int(13, 19)),
      start,
      end: start + span - 1,
    };
    let placed: SceneObject | null = null;
    for (let t = 0; t < 60 && !placed; t++) {
      const cand = placeLarge(l, base, moving[i], frames);
      if (!objects.some((o) => collides(o, cand, frames, margin))) placed = cand;
    }
    if (!placed) return null;
    objects.push(placed);
  }
  const dotSize = length(l, 4);
  let dot: SceneObject | null = null;
  for (let t = 0; t < 60 && !dot; t++) {
    const cand: SceneObject = {
      id: 0,
      kind: 'dot',
      colour: colours[nLarge],
      rgb: jitterRgb(prng, colours[nLarge]),
      shape: 'dot',
      size: dotSize,
      start: 0,
      end: frames - 1,
      x0: coordinate(l, margin, width - dotSize - margin),
      y0: coordinate(l, margin, width - dotSize - margin),
      motion: 'static',
      speed: 0,
    };
    if (!objects.some((o) => collides(o, cand, frames, margin))) dot = cand;
  }
  if (!dot) return null;
  const ordered = [...prng.shuffle(objects), dot].map((o, i) => ({ ...o, id: i + 1 }));
  const background: Background = { ...sampleBackground(prng), kind: prng.pick(BACKGROUNDS) };
  return {
    seed,
    width,
    height: width,
    frames,
    fps: prng.pick(V2_FPS),
    background,
    objects: ordered,
    version: 2,
    antialias: true,
    sensorNoise: prng.real(0, 6),
    blur: prng.bool(0.3),
    encoding: { crf: prng.int(18, 30), pixelFormat: prng.bool(0.25) ? 'yuv420p' : 'yuv444p' },
  };
}

const BACKGROUNDS = ['noise', 'stripes', 'checker', 'gradient', 'blobs'] as const;

/** The v2 scene of a seed (deterministic; a different stream from v1's scene of the same seed). */
export function makeSceneV2(seed: number): Scene {
  const prng = new Prng((seed ^ 0x3c6ef372) >>> 0);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const scene = tryScene(prng, seed);
    if (scene) return scene;
  }
  throw new Error(`could not lay out a v2 scene for seed ${seed}`);
}

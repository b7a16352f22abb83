/**
 * Renders a scene into RGB frames (HWC, the layout src/media/video-encoder.ts encodes) and per-frame
 * object-id maps (0 = background, k = scene.objects[k-1]) that training uses for dense targets.
 */

import type { Frame } from '../media/frame.js';
import { Prng } from './prng.js';
import type { Background, Scene, SceneObject } from './scene.js';
import { isVisible, positionAt } from './scene.js';

export interface RenderedClip {
  frames: Frame[];
  /** One map per frame, width·height bytes each. */
  idMaps: Uint8Array[];
}

/** Whether the point (u, v), relative to the object's top-left corner, lies inside its shape. */
function inside(obj: SceneObject, u: number, v: number): boolean {
  const s = obj.size;
  if (u < 0 || v < 0 || u >= s || v >= s) return false;
  switch (obj.shape) {
    case 'square':
    case 'dot':
      return true;
    case 'circle': {
      const r = s / 2;
      return (u - r) * (u - r) + (v - r) * (v - r) <= r * r;
    }
    case 'triangle':
      // Apex at the top middle, base along the bottom edge.
      return Math.abs(u - s / 2) <= (v / s) * (s / 2);
  }
}

/** Whether pixel (px, py) lies inside the object drawn with its top-left corner at (x, y). */
export function covers(obj: SceneObject, x: number, y: number, px: number, py: number): boolean {
  return inside(obj, px + 0.5 - x, py + 0.5 - y);
}

/** Share of pixel (px, py) that the object covers, from 4×4 samples (anti-aliased edges). */
export function coverage(obj: SceneObject, x: number, y: number, px: number, py: number): number {
  let n = 0;
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) if (inside(obj, px + (j + 0.5) / 4 - x, py + (i + 0.5) / 4 - y)) n++;
  }
  return n / 16;
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/** Smooth value noise in [0, 1]: random values on a grid of `period`·2 px, interpolated bilinearly. */
function valueNoise(width: number, height: number, cell: number, prng: Prng): (x: number, y: number) => number {
  const cols = Math.ceil(width / cell) + 2;
  const rows = Math.ceil(height / cell) + 2;
  const grid = Float32Array.from({ length: cols * rows }, () => prng.next());
  return (x, y) => {
    const gx = x / cell;
    const gy = y / cell;
    const i = Math.floor(gx);
    const j = Math.floor(gy);
    const fx = gx - i;
    const fy = gy - j;
    const at = (a: number, b: number) => grid[b * cols + a];
    const top = at(i, j) * (1 - fx) + at(i + 1, j) * fx;
    const bottom = at(i, j + 1) * (1 - fx) + at(i + 1, j + 1) * fx;
    return top * (1 - fy) + bottom * fy;
  };
}

/** Static background texture, HWC float. */
function backgroundTexture(bg: Background, width: number, height: number, prng: Prng): Float32Array {
  const blobs = bg.kind === 'blobs' ? valueNoise(width, height, 2 * bg.period, prng) : () => 0;
  const out = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let t: number; // 0 = base, 1 = alt
      switch (bg.kind) {
        case 'noise':
          t = prng.next();
          break;
        case 'stripes': {
          const c = bg.orientation === 0 ? y : bg.orientation === 1 ? x : x + y;
          t = Math.floor(c / bg.period) % 2;
          break;
        }
        case 'checker':
          t = (Math.floor(x / bg.period) + Math.floor(y / bg.period)) % 2;
          break;
        case 'blobs':
          t = blobs(x, y);
          break;
        case 'gradient':
          t =
            bg.orientation === 0
              ? y / (height - 1)
              : bg.orientation === 1
                ? x / (width - 1)
                : (x + y) / (width + height - 2);
          break;
      }
      const n = (prng.next() * 2 - 1) * bg.noise;
      const i = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) out[i + c] = bg.base[c] * (1 - t) + bg.alt[c] * t + n;
    }
  }
  return out;
}

/**
 * v1 scenes draw whole-pixel objects (a pixel is inside a shape or not, by its centre). Anti-aliased
 * scenes (v2 and the shifted/retimed variants) give each pixel the share of the object covering it
 * (the id map names the object covering at least half of it). Then blur and sensor noise, if any.
 */
export function renderScene(scene: Scene): RenderedClip {
  const { width, height, frames: nFrames, fps, background } = scene;
  // A separate stream from the scene's, so the texture does not depend on how layout went.
  const prng = new Prng((scene.seed ^ 0x5bd1e995) >>> 0);
  const texture = backgroundTexture(background, width, height, prng);
  const frames: Frame[] = [];
  const idMaps: Uint8Array[] = [];
  for (let f = 0; f < nFrames; f++) {
    let img: Float64Array = new Float64Array(width * height * 3);
    const ids = new Uint8Array(width * height);
    for (let i = 0; i < width * height; i++) {
      const flicker = (prng.next() * 2 - 1) * background.flicker;
      for (let c = 0; c < 3; c++) img[i * 3 + c] = texture[i * 3 + c] + flicker;
    }
    for (const obj of scene.objects) {
      if (!isVisible(obj, f)) continue;
      const { x, y } = positionAt(obj, f);
      for (let py = Math.max(0, Math.floor(y)); py < Math.min(height, Math.ceil(y + obj.size)); py++) {
        for (let px = Math.max(0, Math.floor(x)); px < Math.min(width, Math.ceil(x + obj.size)); px++) {
          const a = scene.antialias ? coverage(obj, x, y, px, py) : covers(obj, x, y, px, py) ? 1 : 0;
          if (a === 0) continue;
          const i = py * width + px;
          if (a >= 0.5) ids[i] = obj.id;
          for (let c = 0; c < 3; c++) img[i * 3 + c] = a === 1 ? obj.rgb[c] : img[i * 3 + c] * (1 - a) + obj.rgb[c] * a;
        }
      }
    }
    if (scene.blur) img = blur3x3(img, width, height);
    const sigma = scene.sensorNoise ?? 0;
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = clampByte(sigma > 0 ? img[i] + sigma * prng.normal() : img[i]);
    frames.push({ index: f, timestampS: f / fps, width, height, rgb });
    idMaps.push(ids);
  }
  return { frames, idMaps };
}

/** Separable [1 2 1]/4 blur with clamped edges, HWC float. */
function blur3x3(img: Float64Array, width: number, height: number): Float64Array {
  const pass = (src: Float64Array, dx: number, dy: number) => {
    const out = new Float64Array(src.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const a = (Math.min(height - 1, Math.max(0, y - dy)) * width + Math.min(width - 1, Math.max(0, x - dx))) * 3;
        const b = (y * width + x) * 3;
        const c = (Math.min(height - 1, y + dy) * width + Math.min(width - 1, x + dx)) * 3;
        for (let k = 0; k < 3; k++) out[b + k] = (src[a + k] + 2 * src[b + k] + src[c + k]) / 4;
      }
    }
    return out;
  };
  return pass(pass(img, 1, 0), 0, 1);
}

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

/** Whether pixel (px, py) lies inside the object drawn with its top-left corner at (x, y). */
export function covers(obj: SceneObject, x: number, y: number, px: number, py: number): boolean {
  const s = obj.size;
  if (px < x || py < y || px >= x + s || py >= y + s) return false;
  const u = px + 0.5 - x; // 0..s
  const v = py + 0.5 - y;
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

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/** Static background texture, HWC float. */
function backgroundTexture(bg: Background, width: number, height: number, prng: Prng): Float32Array {
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

export function renderScene(scene: Scene): RenderedClip {
  const { width, height, frames: nFrames, fps, background } = scene;
  // A separate stream from the scene's, so the texture does not depend on how layout went.
  const prng = new Prng((scene.seed ^ 0x5bd1e995) >>> 0);
  const texture = backgroundTexture(background, width, height, prng);
  const frames: Frame[] = [];
  const idMaps: Uint8Array[] = [];
  for (let f = 0; f < nFrames; f++) {
    const rgb = new Uint8Array(width * height * 3);
    const ids = new Uint8Array(width * height);
    for (let i = 0; i < width * height; i++) {
      const flicker = (prng.next() * 2 - 1) * background.flicker;
      for (let c = 0; c < 3; c++) rgb[i * 3 + c] = clampByte(texture[i * 3 + c] + flicker);
    }
    for (const obj of scene.objects) {
      if (!isVisible(obj, f)) continue;
      const { x, y } = positionAt(obj, f);
      for (let py = Math.max(0, y); py < Math.min(height, y + obj.size); py++) {
        for (let px = Math.max(0, x); px < Math.min(width, x + obj.size); px++) {
          if (!covers(obj, x, y, px, py)) continue;
          const i = py * width + px;
          ids[i] = obj.id;
          rgb[i * 3] = obj.rgb[0];
          rgb[i * 3 + 1] = obj.rgb[1];
          rgb[i * 3 + 2] = obj.rgb[2];
        }
      }
    }
    frames.push({ index: f, timestampS: f / fps, width, height, rgb });
    idMaps.push(ids);
  }
  return { frames, idMaps };
}

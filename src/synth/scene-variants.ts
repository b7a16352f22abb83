/**
 * Held-out variants of a scene that keep its questions and answers: every object shifted by a few
 * pixels, or the clip shown in more or fewer frames. They tell whether a model learned the task or the
 * generator's pixel grid and frame count (docs/demo-model.md).
 */
import type { Scene, SceneObject } from './scene.js';
import { positionAt } from './scene.js';

const whole = (v: number) => Number.isInteger(v);

function drawnWhole(objects: SceneObject[]): boolean {
  return objects.every((o) => whole(o.x0) && whole(o.y0) && whole(o.size) && whole(o.speed));
}

/** Every object moved by `px` pixels right and down (objects at the far edge are cut by the frame). */
export function shiftScene(scene: Scene, px: number): Scene {
  if (px === 0) return scene;
  const objects = scene.objects.map((o) => ({ ...o, x0: o.x0 + px, y0: o.y0 + px }));
  return { ...scene, objects, ...(drawnWhole(objects) ? {} : { antialias: true }) };
}

/**
 * The same scene in `frames` frames over the same duration: each object appears and leaves at the same
 * moments and moves along the same path, sampled more or less often.
 */
export function retimeScene(scene: Scene, frames: number): Scene {
  if (frames === scene.frames) return scene;
  const k = frames / scene.frames;
  const objects = scene.objects.map((o) => {
    const start = Math.ceil(o.start * k);
    // A static object stays until the original's next frame; a moving one stops at its last original
    // position (past it, it could leave the frame).
    const end = o.motion === 'static' ? Math.ceil((o.end + 1) * k) - 1 : Math.floor(o.end * k);
    const { x, y } = positionAt(o, start / k);
    return { ...o, start, end, x0: x, y0: y, speed: o.speed / k };
  });
  return {
    ...scene,
    frames,
    fps: scene.fps * k,
    objects,
    ...(drawnWhole(objects) ? {} : { antialias: true }),
  };
}

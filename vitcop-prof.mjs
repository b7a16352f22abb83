import { OrtPairwise } from './dist/src/engine/pairwise-kernel.js';
import { createMethod } from './dist/src/prune/registry.js';
const [F, N, dv, grid] = [8, 729, 768, 27];
let s = 7;
const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
// Frames share a base so Stage 0 finds static patches; keys correlated with features.
const base = Float32Array.from({ length: N * dv }, rnd);
const features = new Float32Array(F * N * dv);
for (let f = 0; f < F; f++) for (let i = 0; i < N * dv; i++) features[f * N * dv + i] = base[i] + (f > 0 && (i / dv) % 3 < 1 ? 0.2 : 1.5) * rnd();
const keys = Float32Array.from(features, (v) => v * 0.5 + 0.1 * rnd());
const saliency = Float32Array.from({ length: F * N }, () => Math.random());
const pairwise = new OrtPairwise();
await pairwise.warm?.();
for (const name of (process.argv[2] ?? 'vitcop').split(',')) {
  for (let rep = 0; rep < 2; rep++) {
    const m = createMethod(name, { budget: 0.111, frames: F, tokensPerFrame: N, numLayers: 24, seed: 0 });
    const t0 = performance.now();
    const r = await m.encoder?.({ frames: F, tokensPerFrame: N, gridRows: grid, gridCols: grid, ids: Array.from({ length: F * N }, (_, i) => i), features, featureWidth: dv, saliency, keys, visionHidden: dv, visionHeads: 12 }, pairwise);
    console.log(name, 'encoder ms', (performance.now() - t0).toFixed(1), 'slots', r?.slots.length);
  }
}

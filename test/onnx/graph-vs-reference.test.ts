import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { argmax } from '../../src/engine/sampling.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import { type Checkpoint, loadCheckpoint } from '../../src/model/checkpoint.js';
import { type RandomCheckpointSpec, writeRandomCheckpoint } from '../../src/model/random-checkpoint.js';
import type { VlmConfig } from '../../src/model/vlm-config.js';
import { convertCheckpoint } from '../../src/onnx/convert.js';
import { llavaConfig, llavaVision, tempDir } from '../helpers/fixtures.js';
import { maxRelativeError } from '../helpers/numeric.js';
import { LlavaReference } from '../reference/llava-reference.js';

const TOL = 1e-4;

const SPECS: Record<string, RandomCheckpointSpec> = {
  'CLIP + Llama (GQA 4 heads / 2 KV heads)': {
    vision: {
      family: 'clip',
      hiddenSize: 32,
      intermediateSize: 64,
      numLayers: 3,
      numHeads: 4,
      imageSize: 32,
      patchSize: 8,
    },
    text: {
      family: 'llama',
      hiddenSize: 64,
      intermediateSize: 96,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 2,
      vocabSize: 96,
    },
    seed: 11,
  },
  // 38 px at patch 8: 4×4 patches and 6 pixels the conv drops, as SigLIP 384/14 drops 6 (27×27 patches).
  'SigLIP + Qwen2 (QKV bias, GQA 6 heads / 2 KV heads, image size not a multiple of the patch)': {
    vision: {
      family: 'siglip',
      hiddenSize: 32,
      intermediateSize: 64,
      numLayers: 3,
      numHeads: 2,
      imageSize: 38,
      patchSize: 8,
    },
    text: {
      family: 'qwen2',
      hiddenSize: 48,
      intermediateSize: 80,
      numLayers: 4,
      numHeads: 6,
      numKvHeads: 2,
      vocabSize: 96,
    },
    seed: 12,
  },
};

function randomPixels(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return (s / 0x7fffffff) * 4 - 2;
  });
}

async function openRunner(ckpt: Checkpoint, boundaries: number[]): Promise<VlmRunner> {
  const out = tempDir('graphs');
  const { dir, manifest } = await convertCheckpoint(ckpt, { outDir: out, boundaries });
  return VlmRunner.open(dir, manifest, DEFAULT_RUNTIME);
}

for (const [name, spec] of Object.entries(SPECS)) {
  describe(`graphs vs the TypeScript reference: ${name}`, () => {
    let ckpt: Checkpoint;
    let ref: LlavaReference;
    let single: VlmRunner;
    let split: VlmRunner;
    let config: VlmConfig;
    const frames = 2;

    before(async () => {
      const dir = tempDir('ckpt');
      writeRandomCheckpoint(dir, spec);
      ckpt = loadCheckpoint(dir);
      config = llavaConfig(ckpt.config);
      ref = new LlavaReference(config, ckpt.weights);
      single = await openRunner(ckpt, []);
      split = await openRunner(ckpt, [1, 3]);
    });
    after(async () => {
      await single.release();
      await split.release();
      ckpt.weights.close();
    });

    const prompt = () => {
      const n = config.tokensPerImage;
      const img = config.imageTokenId;
      return [1, 10, 11, ...Array(n).fill(img), 12, ...Array(n).fill(img), 13, 14, 15];
    };

    it('vision features, patch saliency and keys match, frame by frame in one batch', async () => {
      const v = config.vision;
      const perFrame = 3 * v.imageSize * v.imageSize;
      const pixels = randomPixels(frames * perFrame, 3);
      const out = await single.encode(llavaVision(pixels, frames, config));
      const n = out.tokens;
      for (let f = 0; f < frames; f++) {
        const r = ref.vision(pixels.subarray(f * perFrame, (f + 1) * perFrame));
        assert.ok(
          maxRelativeError(out.features.subarray(f * n * v.hiddenSize, (f + 1) * n * v.hiddenSize), r.features) < TOL,
          'features',
        );
        assert.ok(maxRelativeError(out.saliency.subarray(f * n, (f + 1) * n), r.clsAttention) < TOL, 'saliency');
        assert.ok(
          maxRelativeError(out.keys.subarray(f * n * v.hiddenSize, (f + 1) * n * v.hiddenSize), r.keys) < TOL,
          'keys',
        );
      }
      const projected = await single.project(out.features, frames * n);
      assert.ok(maxRelativeError(projected, ref.project(out.features, frames * n)) < TOL, 'projector');
    });

    it('prefill logits match; two segments back to back equal one graph; κ and the last-token row match', async () => {
      const ids = prompt();
      const d = config.text.hiddenSize;
      const features = randomPixels(frames * config.tokensPerImage * config.vision.hiddenSize, 5).map((x) => x / 2);
      const embeds = ref.embedPrompt(ids, ref.project(features, frames * config.tokensPerImage));
      const positions = ids.map((_, i) => i);
      const expected = ref.decode(embeds, positions);

      const one = await single.prefill(embeds.slice(), positions, 1);
      assert.ok(
        maxRelativeError(one.logits, expected.logits!) < TOL,
        `one segment: ${maxRelativeError(one.logits, expected.logits!)}`,
      );

      const seen: { end: number; kappa: Float32Array; last?: Float32Array }[] = [];
      const two = await split.prefill(embeds.slice(), positions, 1, (s) => {
        seen.push({ end: s.segment.end, kappa: s.kappa.slice(), last: s.lastTokenAttention?.slice() });
        return s;
      });
      assert.ok(maxRelativeError(two.logits, one.logits) < TOL, 'segmented = single graph');
      assert.deepEqual(
        seen.map((s) => s.end),
        [1, 3],
      );
      for (const s of seen) {
        assert.ok(maxRelativeError(s.kappa, expected.kappa[s.end - 1]) < TOL, `κ at layer ${s.end - 1}`);
        assert.ok(
          maxRelativeError(s.last!, expected.lastAttention[s.end - 1]) < TOL,
          `last-token attention at layer ${s.end - 1}`,
        );
      }
      assert.equal(d, config.text.hiddenSize);
    });

    it(
      'a pruned prompt keeps its original positions: ' +
        'graph rows after a segment hook equal the reference on the same rows',
      async () => {
        const ids = prompt();
        const d = config.text.hiddenSize;
        const embeds = ref.embed(ids);
        const positions = ids.map((_, i) => i);
        const keep = positions.filter((p) => p % 3 !== 1 || p < 3 || p > ids.length - 4);
        const result = await split.prefill(embeds.slice(), positions, 1, (s) => {
          if (s.segment.end !== 1) return s;
          const hidden = new Float32Array(keep.length * d);
          for (const [i, p] of keep.entries()) hidden.set(s.hidden.subarray(p * d, (p + 1) * d), i * d);
          return { hidden, positions: keep };
        });
        const first = ref.decode(embeds, positions, { to: 1 });
        const kept = new Float32Array(keep.length * d);
        for (const [i, p] of keep.entries()) kept.set(first.hidden.subarray(p * d, (p + 1) * d), i * d);
        const rest = ref.decode(kept, keep, { from: 1 });
        assert.ok(maxRelativeError(result.logits, rest.logits!) < TOL);
        assert.deepEqual(result.segmentRows, [ids.length, keep.length, keep.length]);
      },
    );

    it('decode with the KV cache equals full recomputation, step by step', async () => {
      const ids = prompt();
      const embeds = ref.embed(ids);
      const positions = ids.map((_, i) => i);
      const steps = 5;
      const prefill = await split.prefill(embeds.slice(), positions, steps);
      const tokens = [argmax(prefill.logits)];
      for (let t = 1; t < steps; t++) {
        const logits = await split.decode(tokens[t - 1], ids.length + t - 1);
        const all = [...ids, ...tokens];
        const full = ref.decode(
          ref.embed(all),
          all.map((_, i) => i),
        );
        assert.ok(maxRelativeError(logits, full.logits!) < TOL, `step ${t}: ${maxRelativeError(logits, full.logits!)}`);
        tokens.push(argmax(logits));
      }
      const kv = split.kvBytes();
      assert.ok(kv.used <= kv.reserved && kv.used > 0);
    });
  });
}

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { type PreparedModel, prepareModel } from '../../src/engine/prepare-model.js';
import { VlmRunner } from '../../src/engine/vlm-runner.js';
import type { Frame } from '../../src/media/frame.js';
import { convertCheckpoint } from '../../src/onnx/convert.js';
import type { WeightReader } from '../../src/onnx/layers.js';
import { llavaConfig, REPO_ROOT, tempDir } from '../helpers/fixtures.js';
import { maxRelativeError } from '../helpers/numeric.js';

const DEMO = join(REPO_ROOT, 'models', 'demo');

interface GoldenCase {
  question: string;
  input_ids: number[];
  frames_shape: [number, number, number, number];
  frames_rgb_base64: string;
  last_logits: number[];
}

describe('the shipped demo model', () => {
  let prepared: PreparedModel;
  let runner: VlmRunner;
  before(async () => {
    prepared = await prepareModel(DEMO, { graphDir: tempDir('demo-graphs') });
    runner = await VlmRunner.open(prepared.graphDir, prepared.manifest, DEFAULT_RUNTIME);
  });
  after(async () => {
    await runner.release();
    prepared.checkpoint.weights.close();
  });

  it('loads with no missing and no unexpected keys', async () => {
    const { checkpoint } = prepared;
    const read = new Set<string>();
    const recording: WeightReader = {
      has: (n) => checkpoint.weights.has(n),
      shape: (n) => checkpoint.weights.shape(n),
      get: (n) => {
        read.add(n);
        return checkpoint.weights.get(n);
      },
    };
    await convertCheckpoint({ ...checkpoint, weights: recording }, { outDir: tempDir('demo-keys') });
    const v = llavaConfig(checkpoint.config).vision;
    // Hugging Face keeps the vision layers after the feature layer and post_layernorm, which llava never uses.
    const unused = (n: string) =>
      /post_layernorm/.test(n) || Number(/encoder\.layers\.(\d+)\./.exec(n)?.[1] ?? -1) >= v.featureLayer;
    const unexpected = checkpoint.weights.names().filter((n) => !read.has(n) && !unused(n));
    assert.deepEqual(unexpected, []);
  });

  it('matches the golden logits its training code saved (≤ 1e-3 relative), from the same prompt ids', async () => {
    const golden = JSON.parse(readFileSync(join(DEMO, 'golden.json'), 'utf8')) as { cases: GoldenCase[] };
    assert.ok(golden.cases.length > 0);
    const { family } = prepared.checkpoint;
    const d = prepared.checkpoint.config.text.hiddenSize;
    for (const c of golden.cases) {
      const [F, H, W] = c.frames_shape;
      const rgb = Buffer.from(c.frames_rgb_base64, 'base64');
      const frames: Frame[] = Array.from({ length: F }, (_, f) => ({
        index: f,
        timestampS: f,
        width: W,
        height: H,
        rgb: new Uint8Array(rgb.subarray(f * H * W * 3, (f + 1) * H * W * 3)),
      }));
      const input = await family.prepare(frames);
      const { ids, visualRows, positions } = family.layout(frames, input, c.question);
      assert.deepEqual(ids, c.input_ids, `prompt ids for "${c.question}"`);
      const vision = await runner.encode(input);
      const tokens = await runner.project(vision.features, F * vision.tokens);
      const hidden = await runner.embed(ids);
      visualRows.forEach((row, id) => {
        hidden.set(tokens.subarray(id * d, (id + 1) * d), row * d);
      });
      const { logits } = await runner.prefill(hidden, positions, 1);
      const err = maxRelativeError(logits, c.last_logits);
      assert.ok(err <= 1e-3, `"${c.question}": relative error ${err}`);
    }
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DecoderRunner } from '../../src/engine/decoder-runner.js';
import { idefics3Layout, idefics3Prompt } from '../../src/engine/idefics3-prompt.js';
import { createSession, DEFAULT_RUNTIME, type Session, tensor } from '../../src/engine/ort-session.js';
import type { PromptLayout } from '../../src/engine/prompt-layout.js';
import { argmax } from '../../src/engine/sampling.js';
import { type Idefics3Config, readIdefics3Config } from '../../src/model/idefics3-config.js';
import { openWeights } from '../../src/model/safetensors.js';
import type { VlmConfig } from '../../src/model/vlm-config.js';
import type { GraphManifest } from '../../src/onnx/convert.js';
import { idefics3Keys } from '../../src/onnx/idefics3-keys.js';
import { buildIdefics3Graphs } from '../../src/onnx/idefics3-vision.js';
import { buildDecoderSegment } from '../../src/onnx/llm-decoder.js';
import { writeModel } from '../../src/onnx/model-writer.js';
import { buildEmbedding, PROJECTOR_IO, VISION_IO } from '../../src/onnx/vision-encoder.js';
import { tempDir } from '../helpers/fixtures.js';
import { type Arr, type FamilyReference, readFixtureJson } from '../helpers/hf-reference.js';
import { maxRelativeError } from '../helpers/numeric.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/hf-reference/idefics3-tiny');
const TOL = 1e-4;

interface Input {
  input_ids: number[];
  pixel_values: Arr;
  pixel_attention_mask: Arr;
  n_new_tokens: number;
  token_ids: { special: Record<string, number>; text: Record<string, number> };
}
type Reference = FamilyReference;

const read = <T>(file: string) => readFixtureJson<T>(DIR, file);

/** The fixture's made-up vocabulary: text pieces matched longest first, as a BPE merging `\n\n` would. */
function fixtureTokenizer(vocab: Input['token_ids']) {
  const pieces = Object.keys(vocab.text).sort((a, b) => b.length - a.length);
  const encode = (text: string) => {
    const ids: number[] = [];
    for (let at = 0; at < text.length; ) {
      const piece = pieces.find((p) => text.startsWith(p, at));
      if (!piece) throw new Error(`no fixture token for ${JSON.stringify(text.slice(at))}`);
      ids.push(vocab.text[piece]);
      at += piece.length;
    }
    return ids;
  };
  const specialId = (token: string) => {
    const id = vocab.special[token];
    if (id === undefined) throw new Error(`no fixture id for ${token}`);
    return id;
  };
  return { encode, specialId };
}

/** transformers' pixel_shuffle of [units, patches, d] rows: token (hb, wb) gets patches (hb·s+i, wb·s+j) as (i·s+j)·d. */
function pixelShuffle(rows: number[], units: number, side: number, s: number, d: number): number[] {
  const t = side / s;
  const out: number[] = [];
  for (let u = 0; u < units; u++)
    for (let hb = 0; hb < t; hb++)
      for (let wb = 0; wb < t; wb++)
        for (let i = 0; i < s; i++)
          for (let j = 0; j < s; j++) {
            const patch = (hb * s + i) * side + wb * s + j;
            const at = (u * side * side + patch) * d;
            out.push(...rows.slice(at, at + d));
          }
  return out;
}

const CASES = {
  image: {
    visual: { kind: 'images', splits: [{ rows: 2, cols: 3 }] },
    question: 'Can you describe this image?',
  },
  frames: {
    visual: { kind: 'video', timestampsS: [0, 1, 2, 3], durationS: 4 },
    question: 'What happens in this video?',
  },
} as const;

const BOUNDARIES = [[], [1]];

describe('Idefics3 graphs match Hugging Face transformers on idefics3-tiny', () => {
  let cfg: Idefics3Config;
  let vision: Session;
  let connector: Session;
  const decoders: DecoderRunner[] = [];

  before(async () => {
    cfg = readIdefics3Config(DIR);
    const weights = openWeights(DIR);
    const keys = idefics3Keys(weights);
    const out = tempDir('idefics3');
    const maxPositions = 256;
    const files: [string, () => ReturnType<typeof buildEmbedding>][] = [
      ...buildIdefics3Graphs(cfg, weights, 'fp32'),
      ['embed.onnx', () => buildEmbedding(weights, cfg.text.hiddenSize, 'fp32', keys.text)],
    ];
    const manifests = BOUNDARIES.map((boundaries) => {
      const edges = [0, ...boundaries, cfg.text.numLayers];
      const segments = edges.slice(0, -1).map((start, i) => ({
        start,
        end: edges[i + 1],
        file: `decoder-${start}-${edges[i + 1]}.onnx`,
        lastTokenAttention: edges[i + 1] < cfg.text.numLayers,
      }));
      for (const s of segments) {
        if (!files.some(([f]) => f === s.file)) {
          files.push([s.file, () => buildDecoderSegment(cfg.text, weights, s, 'fp32', maxPositions, keys)]);
        }
      }
      const manifest: GraphManifest = {
        format: 0,
        dtype: 'fp32',
        visionDtype: 'fp32',
        boundaries,
        maxPositions,
        // The decoder runner reads only the text config; the engine's manifest will carry the family's config.
        config: { text: cfg.text } as VlmConfig,
        graphs: { vision: 'vision.onnx', projector: 'projector.onnx', embed: 'embed.onnx' },
        visionHeads: cfg.vision.numHeads,
        segments,
        sources: {},
        weightBytes: {},
      };
      return manifest;
    });
    for (const [file, build] of files) writeModel(build(), join(out, file));
    vision = await createSession(join(out, 'vision.onnx'), DEFAULT_RUNTIME);
    connector = await createSession(join(out, 'projector.onnx'), DEFAULT_RUNTIME);
    for (const m of manifests) decoders.push(await DecoderRunner.open(out, m, DEFAULT_RUNTIME));
  });

  after(async () => {
    await Promise.all([vision?.release(), connector?.release(), ...decoders.map((d) => d.release())]);
  });

  for (const [name, c] of Object.entries(CASES)) {
    describe(`input ${name}`, () => {
      const input = read<Input>(`input_${name}.json`);
      const ref = read<Reference>(`reference_${name}.json`);
      let layout: PromptLayout;
      let rows: Float32Array;

      it('the prompt layout gives the fixture input_ids and image positions', () => {
        const { encode, specialId } = fixtureTokenizer(input.token_ids);
        layout = idefics3Layout(
          idefics3Prompt(c.visual, c.question, cfg.tokensPerImage),
          encode,
          specialId,
          cfg.imageTokenId,
        );
        assert.deepEqual(layout.ids, input.input_ids);
        assert.deepEqual(layout.visualRows, ref.inserted_positions);
        assert.deepEqual(
          layout.positions,
          layout.ids.map((_, i) => i),
        );
        assert.ok(
          input.pixel_attention_mask.data.every((m) => m === 1),
          'the fixture has full tiles only',
        );
      });

      it('vision features (pixel-shuffled post_layernorm output), saliency and keys', async (t) => {
        const units = input.pixel_values.shape[1];
        const side = cfg.vision.patchesPerSide;
        const out = await vision.run({
          [VISION_IO.pixels]: tensor.f32(Float32Array.from(input.pixel_values.data), [units, 3, 32, 32]),
        });
        const features = out[VISION_IO.features];
        assert.deepEqual(features.dims, [units, cfg.tokensPerImage, cfg.featureWidth]);
        const expected = pixelShuffle(ref.vision_features.data, units, side, cfg.scaleFactor, cfg.vision.hiddenSize);
        const err = maxRelativeError(features.data as Float32Array, expected);
        t.diagnostic(`vision features relative error ${err}`);
        assert.ok(err < TOL, `vision features relative error ${err}`);
        rows = features.data as Float32Array;

        // Mean attention received sums to 1 over a unit's patches; a token is the mean of scale² of them.
        const saliency = out[VISION_IO.saliency];
        assert.deepEqual(saliency.dims, [units, cfg.tokensPerImage]);
        const s = saliency.data as Float32Array;
        for (let u = 0; u < units; u++) {
          const sum = s.subarray(u * cfg.tokensPerImage, (u + 1) * cfg.tokensPerImage).reduce((a, b) => a + b, 0);
          assert.ok(Math.abs(sum - 1 / cfg.scaleFactor ** 2) < 1e-5, `unit ${u}: saliency sums to ${sum}`);
        }
        assert.deepEqual(out[VISION_IO.keys].dims, [units, cfg.tokensPerImage, cfg.vision.hiddenSize]);
      });

      it('connector output and the inserted rows', async (t) => {
        const n = rows.length / cfg.featureWidth;
        const out = await connector.run({ [PROJECTOR_IO.features]: tensor.f32(rows, [n, cfg.featureWidth]) });
        const tokens = out[PROJECTOR_IO.tokens].data as Float32Array;
        const err = maxRelativeError(tokens, ref.image_features.data);
        t.diagnostic(`connector output relative error ${err}`);
        assert.ok(err < TOL, `connector output relative error ${err}`);
        const d = cfg.text.hiddenSize;
        // Visual token k (unit-major) is connector row k; the fixture lists the inserted rows in prompt order.
        const order = layout.visualRows.map((row, k) => [row, k]).sort((a, b) => a[0] - b[0]);
        const inserted = order.flatMap(([, k]) => Array.from(tokens.subarray(k * d, (k + 1) * d)));
        const insertedErr = maxRelativeError(inserted, ref.inserted_features.data);
        t.diagnostic(`inserted rows relative error ${insertedErr}`);
        assert.ok(insertedErr < TOL, `inserted rows relative error ${insertedErr}`);
        rows = tokens;
      });

      BOUNDARIES.forEach((boundaries, b) => {
        it(`last logits and greedy tokens with ${boundaries.length + 1} decoder segment(s)`, async (t) => {
          const decoder = decoders[b];
          const d = cfg.text.hiddenSize;
          const seq = layout.ids.length;
          const hidden = await decoder.embed(layout.ids);
          const hiddenRef = ref.hidden_states_last_pos.data;
          const embErr = maxRelativeError(hidden.subarray((seq - 1) * d), hiddenRef.slice(0, d));
          assert.ok(embErr < TOL, `embeddings at the last position: relative error ${embErr}`);
          layout.visualRows.forEach((row, k) => {
            hidden.set(rows.subarray(k * d, (k + 1) * d), row * d);
          });
          const prefill = await decoder.prefill(hidden, layout.positions, input.n_new_tokens, (state) => {
            const layerErr = maxRelativeError(state.hidden.subarray((seq - 1) * d), hiddenRef.slice(d, 2 * d));
            assert.ok(layerErr < TOL, `layer 0 output at the last position: relative error ${layerErr}`);
            return state;
          });
          const logitErr = maxRelativeError(prefill.logits, ref.last_logits);
          t.diagnostic(`last logits relative error ${logitErr}`);
          assert.ok(logitErr < TOL, `last logits relative error ${logitErr}`);
          const tokens = [argmax(prefill.logits)];
          const maxLogits = [Math.max(...prefill.logits)];
          for (let t = 1; t < input.n_new_tokens; t++) {
            const logits = await decoder.decode(tokens[t - 1], layout.nextPosition + t - 1);
            tokens.push(argmax(logits));
            maxLogits.push(Math.max(...logits));
          }
          assert.deepEqual(tokens, ref.greedy_tokens);
          const stepErr = maxRelativeError(maxLogits, ref.greedy_step_max_logit);
          t.diagnostic(`greedy step max logits relative error ${stepErr}; tokens ${tokens.join(' ')}`);
          assert.ok(stepErr < TOL, `greedy step max logits relative error ${stepErr}`);
        });
      });
    });
  }
});

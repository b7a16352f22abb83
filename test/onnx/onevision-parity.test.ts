import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DecoderRunner } from '../../src/engine/decoder-runner.js';
import { layoutOnevisionPrompt, type OnevisionMedia } from '../../src/engine/onevision-prompt.js';
import { createSession, DEFAULT_RUNTIME, type Session, type Tensor, tensor } from '../../src/engine/ort-session.js';
import { argmax } from '../../src/engine/sampling.js';
import { type OnevisionConfig, readOnevisionConfig } from '../../src/model/onevision-config.js';
import { openWeights } from '../../src/model/safetensors.js';
import type { GraphManifest } from '../../src/onnx/convert.js';
import { GraphBuilder } from '../../src/onnx/graph-builder.js';
import { WeightLoader, type WeightReader } from '../../src/onnx/layers.js';
import { buildDecoderSegment } from '../../src/onnx/llm-decoder.js';
import { writeModel } from '../../src/onnx/model-writer.js';
import { onevisionKeys } from '../../src/onnx/onevision-keys.js';
import { buildOnevisionGraphs, ONEVISION_GRAPHS, ONEVISION_IO } from '../../src/onnx/onevision-vision.js';
import { buildEmbedding } from '../../src/onnx/vision-encoder.js';
import { visionTower } from '../../src/onnx/vision-tower.js';
import { anyresLayout, readOnevisionProcessors, type VisualUnit } from '../../src/vision/onevision-processor.js';
import { tempDir } from '../helpers/fixtures.js';
import { type Arr, type FamilyReference, readFixtureJson } from '../helpers/hf-reference.js';
import { maxRelativeError } from '../helpers/numeric.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/hf-reference/llava-onevision-tiny');
const TOL = 1e-4;

interface Input {
  input_ids: number[];
  pixel_values?: Arr;
  pixel_values_videos?: Arr;
  image_sizes?: number[][];
  n_new_tokens: number;
  layout: string[];
  token_ids: { special: Record<string, number>; text: Record<string, number> };
}

type Reference = FamilyReference;

const read = <T>(file: string) => readFixtureJson<T>(DIR, file);

/** The checkpoint's tensors under transformers ≥ 4.52 names (`model.*`, top-level `lm_head`). */
function renamedReader(reader: WeightReader): WeightReader {
  const RENAMES: [string, string][] = [
    ['model.language_model.', 'language_model.model.'],
    ['model.vision_tower.', 'vision_tower.'],
    ['model.multi_modal_projector.', 'multi_modal_projector.'],
    ['model.image_newline', 'image_newline'],
    ['lm_head.weight', 'language_model.lm_head.weight'],
  ];
  const old = (name: string) => {
    const hit = RENAMES.find(([now]) => name.startsWith(now));
    return hit ? hit[1] + name.slice(hit[0].length) : `unrenamed:${name}`;
  };
  return { has: (n) => reader.has(old(n)), shape: (n) => reader.shape(old(n)), get: (n) => reader.get(old(n)) };
}

/** The vision tower alone, to compare with HF's hidden_states[-1] (before post_layernorm). */
function towerGraph(cfg: OnevisionConfig, reader: WeightReader): GraphBuilder {
  const g = new GraphBuilder('tower');
  const w = new WeightLoader(g, reader, 'fp32');
  const v = cfg.vision;
  const pixels = g.input('pixel_values', 'float32', ['n', 3, v.imageSize, v.imageSize]);
  g.output(visionTower(w, v, pixels, onevisionKeys(reader).vision).hidden, 'hidden', 'float32', [
    'n',
    'p',
    v.hiddenSize,
  ]);
  return g;
}

interface Built {
  dir: string;
  sessions: Record<string, Session>;
  decoders: Map<number, DecoderRunner>;
}

async function build(cfg: OnevisionConfig, reader: WeightReader, layout: string): Promise<Built> {
  const dir = tempDir(`onevision-${layout}`);
  const graphs: [string, () => GraphBuilder][] = [
    ...buildOnevisionGraphs(cfg, reader, 'fp32'),
    ['tower.onnx', () => towerGraph(cfg, reader)],
  ];
  const sessions: Record<string, Session> = {};
  for (const [file, make] of graphs) {
    writeModel(make(), join(dir, file));
    sessions[file] = await createSession(join(dir, file), DEFAULT_RUNTIME);
  }
  const textKeys = onevisionKeys(reader).textKeys;
  writeModel(buildEmbedding(reader, cfg.text.hiddenSize, 'fp32', textKeys.text), join(dir, 'embed.onnx'));
  const decoders = new Map<number, DecoderRunner>();
  for (const boundaries of [[], [1]]) {
    const edges = [0, ...boundaries, cfg.text.numLayers];
    const segments = edges.slice(0, -1).map((start, i) => ({
      start,
      end: edges[i + 1],
      file: `decoder-${start}-${edges[i + 1]}.onnx`,
      lastTokenAttention: edges[i + 1] < cfg.text.numLayers,
    }));
    for (const s of segments) {
      writeModel(buildDecoderSegment(cfg.text, reader, s, 'fp32', 512, textKeys), join(dir, s.file));
    }
    // DecoderRunner reads the embedding and segment files and the text config only.
    const manifest = { config: { text: cfg.text }, graphs: { embed: 'embed.onnx' }, segments } as GraphManifest;
    decoders.set(segments.length, await DecoderRunner.open(dir, manifest, DEFAULT_RUNTIME));
  }
  return { dir, sessions, decoders };
}

async function run(session: Session, feeds: Record<string, Tensor>) {
  const out = await session.run(feeds);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

/** Collapses the runs of placeholders back to one id per media, as a chat template renders them. */
function rendered(ids: number[], placeholder: number): number[] {
  return ids.filter((id, i) => id !== placeholder || ids[i - 1] !== placeholder);
}

/** The fixture's run-length rendering of input_ids. */
function runLength(ids: number[], names: Map<number, string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < ids.length; ) {
    let j = i;
    while (j < ids.length && ids[j] === ids[i]) j++;
    const name = names.get(ids[i]) ?? String(ids[i]);
    if (name.startsWith('<image') || name.startsWith('<video')) out.push(`${name} x${j - i}`);
    else for (let k = i; k < j; k++) out.push(name);
    i = j;
  }
  return out;
}

interface CaseResult {
  vision: Float32Array;
  projected: Float32Array;
  inserted: Float32Array;
  insertedPositions: number[];
  ids: number[];
  layoutNames: string[];
  /** The last prompt row entering the decoder, and leaving layer 0. */
  embeddedLast: Float32Array;
  afterLayer0: Float32Array;
  runs: Map<number, { logits: Float32Array; tokens: number[]; stepMax: number[] }>;
}

async function runCase(b: Built, cfg: OnevisionConfig, input: Input): Promise<CaseResult> {
  const isVideo = input.pixel_values_videos !== undefined;
  const px = isVideo ? input.pixel_values_videos : input.pixel_values;
  assert.ok(px);
  const [, n, c, h, w] = px.shape;
  const pixels = tensor.f32(Float32Array.from(px.data), [n, c, h, w]);
  const vision = (await run(b.sessions['tower.onnx'], { pixel_values: pixels })).hidden;
  const perPatch = await b.sessions[ONEVISION_GRAPHS.vision].run({ [ONEVISION_IO.pixels]: pixels });
  const projected = perPatch[ONEVISION_IO.features].data as Float32Array;
  const newline = (await run(b.sessions[ONEVISION_GRAPHS.imageNewline], {}))[ONEVISION_IO.newline];

  const rows = {
    [ONEVISION_IO.patchFeatures]: perPatch[ONEVISION_IO.features],
    [ONEVISION_IO.patchSaliency]: perPatch[ONEVISION_IO.saliency],
    [ONEVISION_IO.patchKeys]: perPatch[ONEVISION_IO.keys],
  };
  let media: OnevisionMedia;
  let tokens: Float32Array;
  if (isVideo) {
    tokens = (await run(b.sessions[ONEVISION_GRAPHS.videoPool], rows))[ONEVISION_IO.features];
    const unit: VisualUnit = { rows: cfg.pooledGrid, cols: cfg.pooledGrid, newlineAfterRow: false };
    media = { kind: 'video', units: Array.from({ length: n }, () => unit) };
  } else {
    assert.ok(input.image_sizes);
    const [height, width] = input.image_sizes[0];
    const geometry = anyresLayout(height, width, readOnevisionProcessors(DIR, cfg));
    const packed = await run(b.sessions[ONEVISION_GRAPHS.anyresPack], {
      ...rows,
      [ONEVISION_IO.tileGrid]: tensor.i64(geometry.tileGrid, [2]),
      [ONEVISION_IO.crop]: tensor.i64(geometry.crop, [4]),
      [ONEVISION_IO.tokenGrid]: tensor.i64(geometry.tokenGrid, [2]),
    });
    tokens = packed[ONEVISION_IO.features];
    const base = { rows: cfg.patchGrid, cols: cfg.patchGrid, newlineAfterRow: false };
    const grid = { rows: geometry.tokenGrid[0], cols: geometry.tokenGrid[1], newlineAfterRow: true };
    media = { kind: 'image', units: [base, grid] };
  }

  const placeholder = isVideo ? cfg.videoTokenId : cfg.imageTokenId;
  const prompt = layoutOnevisionPrompt(rendered(input.input_ids, placeholder), [media], cfg);
  const { layout, newlineRows } = prompt;
  const d = cfg.text.hiddenSize;
  const insertedPositions = [...layout.visualRows, ...newlineRows].sort((a, b) => a - b);
  const names = new Map(
    Object.entries({ ...input.token_ids.special, ...input.token_ids.text }).map(([k, v]) => [v, k]),
  );

  const runs: CaseResult['runs'] = new Map();
  let inserted = new Float32Array(0);
  let afterLayer0 = new Float32Array(0);
  let embeddedLast = new Float32Array(0);
  for (const [segments, decoder] of b.decoders) {
    const hidden = await decoder.embed(layout.ids);
    for (const [t, row] of layout.visualRows.entries()) hidden.set(tokens.subarray(t * d, (t + 1) * d), row * d);
    for (const row of newlineRows) hidden.set(newline, row * d);
    inserted = new Float32Array(insertedPositions.length * d);
    for (const [i, row] of insertedPositions.entries()) inserted.set(hidden.subarray(row * d, (row + 1) * d), i * d);
    embeddedLast = hidden.slice((layout.ids.length - 1) * d);
    const prefill = await decoder.prefill(hidden, layout.positions, input.n_new_tokens, (state) => {
      const rows = state.positions.length;
      afterLayer0 = state.hidden.slice((rows - 1) * d, rows * d);
      return state;
    });
    const out = [argmax(prefill.logits)];
    const stepMax = [Math.max(...prefill.logits)];
    for (let t = 1; t < input.n_new_tokens; t++) {
      const logits = await decoder.decode(out[t - 1], layout.nextPosition + t - 1);
      out.push(argmax(logits));
      stepMax.push(Math.max(...logits));
    }
    runs.set(segments, { logits: prefill.logits, tokens: out, stepMax });
  }
  return {
    vision,
    projected,
    inserted,
    insertedPositions,
    ids: layout.ids,
    layoutNames: runLength(layout.ids, names),
    embeddedLast,
    afterLayer0,
    runs,
  };
}

const CASES = ['image', 'image_large', 'video'];

for (const keyLayout of ['transformers ≤ 4.51 keys', 'transformers ≥ 4.52 keys']) {
  describe(`llava_onevision graphs match Hugging Face transformers (${keyLayout})`, () => {
    const cfg = readOnevisionConfig(DIR);
    const weights = openWeights(DIR);
    const reader = keyLayout.includes('≥') ? renamedReader(weights) : weights;
    let b: Built;
    before(async () => {
      b = await build(cfg, reader, keyLayout.includes('≥') ? 'new' : 'old');
    });
    after(async () => {
      await Promise.all([...Object.values(b.sessions), ...b.decoders.values()].map((s) => s.release()));
      weights.close();
    });

    it('moves saliency and keys with the features: a gather when packing, bilinear weights when pooling', async () => {
      const perPatch = async (name: string) => {
        const input = read<Input>(`input_${name}.json`);
        const px = input.pixel_values ?? input.pixel_values_videos;
        assert.ok(px);
        const [, n, c, h, w] = px.shape;
        const out = await b.sessions[ONEVISION_GRAPHS.vision].run({
          [ONEVISION_IO.pixels]: tensor.f32(Float32Array.from(px.data), [n, c, h, w]),
        });
        return {
          [ONEVISION_IO.patchFeatures]: out[ONEVISION_IO.features],
          [ONEVISION_IO.patchSaliency]: out[ONEVISION_IO.saliency],
          [ONEVISION_IO.patchKeys]: out[ONEVISION_IO.keys],
        };
      };
      const dv = cfg.vision.hiddenSize;
      const image = await perPatch('image');
      const geometry = anyresLayout(15, 20, readOnevisionProcessors(DIR, cfg));
      const packed = await run(b.sessions[ONEVISION_GRAPHS.anyresPack], {
        ...image,
        [ONEVISION_IO.tileGrid]: tensor.i64(geometry.tileGrid, [2]),
        [ONEVISION_IO.crop]: tensor.i64(geometry.crop, [4]),
        [ONEVISION_IO.tokenGrid]: tensor.i64(geometry.tokenGrid, [2]),
      });
      const patchSaliency = image[ONEVISION_IO.patchSaliency].data as Float32Array;
      const patchKeys = image[ONEVISION_IO.patchKeys].data as Float32Array;
      // Base tile: tile 0's 9 patches. Grid token (r, c) is the cell (r + 1, c) of the 6×6 picture (one row cut).
      const source = (token: number) => {
        if (token < 9) return token;
        const [y, x] = [Math.floor((token - 9) / 6) + 1, (token - 9) % 6];
        return (1 + Math.floor(y / 3) * 2 + Math.floor(x / 3)) * 9 + (y % 3) * 3 + (x % 3);
      };
      for (let token = 0; token < 9 + 24; token++) {
        const p = source(token);
        assert.equal(packed[ONEVISION_IO.saliency][token], patchSaliency[p], `saliency of token ${token}`);
        assert.deepEqual(
          packed[ONEVISION_IO.keys].subarray(token * dv, (token + 1) * dv),
          patchKeys.subarray(p * dv, (p + 1) * dv),
        );
      }

      const video = await perPatch('video');
      const pooled = await run(b.sessions[ONEVISION_GRAPHS.videoPool], video);
      const s = video[ONEVISION_IO.patchSaliency].data as Float32Array;
      // 3 → 2 with half-pixel centres: output 0 samples 0.25, output 1 samples 1.75.
      const weights = [
        [0.75, 0.25, 0],
        [0, 0.25, 0.75],
      ];
      for (let f = 0; f < 4; f++) {
        for (let i = 0; i < 2; i++) {
          for (let j = 0; j < 2; j++) {
            let expected = 0;
            for (let y = 0; y < 3; y++)
              for (let x = 0; x < 3; x++) expected += weights[i][y] * weights[j][x] * s[f * 9 + y * 3 + x];
            const got = pooled[ONEVISION_IO.saliency][f * 4 + i * 2 + j];
            assert.ok(Math.abs(got - expected) < 1e-7, `frame ${f} token (${i}, ${j}): ${got} vs ${expected}`);
          }
        }
      }
    });

    for (const name of CASES) {
      it(`${name}: vision features, projector output, inserted rows, layout, logits and greedy tokens`, async (t) => {
        const input = read<Input>(`input_${name}.json`);
        const ref = read<Reference>(`reference_${name}.json`);
        const r = await runCase(b, cfg, input);
        const errors: string[] = [];
        const err = (a: ArrayLike<number>, e: ArrayLike<number>, what: string) => {
          const e1 = maxRelativeError(a, e);
          errors.push(`${what} ${e1.toExponential(2)}`);
          assert.ok(e1 <= TOL, `${name} ${what}: relative error ${e1}`);
        };
        err(r.vision, ref.vision_features.data, 'vision features');
        err(r.projected, ref.image_features.data, 'projector output');
        assert.deepEqual(r.ids, input.input_ids);
        assert.deepEqual(r.layoutNames, input.layout);
        assert.deepEqual(r.insertedPositions, ref.inserted_positions);
        err(r.inserted, ref.inserted_features.data, 'inserted rows');
        const hiddenLast = ref.hidden_states_last_pos.data;
        err(r.embeddedLast, hiddenLast.slice(0, 32), 'embeddings at the last position');
        err(r.afterLayer0, hiddenLast.slice(32, 64), 'hidden state after decoder layer 0 at the last position');
        for (const [segments, run] of r.runs) {
          err(run.logits, ref.last_logits, `last logits (${segments} segment(s))`);
          assert.deepEqual(run.tokens, ref.greedy_tokens, `greedy tokens (${segments} segment(s))`);
          err(run.stepMax, ref.greedy_step_max_logit, `greedy step max logits (${segments} segment(s))`);
        }
        t.diagnostic(`max relative errors: ${errors.join(', ')}`);
      });
    }
  });
}

describe('llava_onevision vision-side graphs with fp16 weights', () => {
  it('build, run and stay within fp16 rounding of the fp32 graphs', async () => {
    const cfg = readOnevisionConfig(DIR);
    const weights = openWeights(DIR);
    const dir = tempDir('onevision-fp16');
    const outputs: Record<string, Float32Array>[] = [];
    for (const dtype of ['fp32', 'fp16'] as const) {
      const sessions: Record<string, Session> = {};
      for (const [file, make] of buildOnevisionGraphs(cfg, weights, dtype)) {
        writeModel(make(), join(dir, `${dtype}-${file}`));
        sessions[file] = await createSession(join(dir, `${dtype}-${file}`), DEFAULT_RUNTIME);
      }
      const px = read<Input>('input_video.json').pixel_values_videos;
      assert.ok(px);
      const perPatch = await sessions[ONEVISION_GRAPHS.vision].run({
        [ONEVISION_IO.pixels]: tensor.f32(Float32Array.from(px.data), [4, 3, 12, 12]),
      });
      const pooled = await run(sessions[ONEVISION_GRAPHS.videoPool], {
        [ONEVISION_IO.patchFeatures]: perPatch[ONEVISION_IO.features],
        [ONEVISION_IO.patchSaliency]: perPatch[ONEVISION_IO.saliency],
        [ONEVISION_IO.patchKeys]: perPatch[ONEVISION_IO.keys],
      });
      const newline = await run(sessions[ONEVISION_GRAPHS.imageNewline], {});
      outputs.push({ ...pooled, ...newline });
      await Promise.all(Object.values(sessions).map((s) => s.release()));
    }
    weights.close();
    for (const name of [ONEVISION_IO.features, ONEVISION_IO.keys, ONEVISION_IO.newline]) {
      const e = maxRelativeError(outputs[1][name], outputs[0][name]);
      assert.ok(e > 0 && e < 1e-2, `${name}: fp16 vs fp32 relative error ${e}`);
    }
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DecoderRunner } from '../../src/engine/decoder-runner.js';
import { createSession, DEFAULT_RUNTIME, type Session, tensor } from '../../src/engine/ort-session.js';
import { qwen2VlDecodePosition, qwen2VlPrompt } from '../../src/engine/qwen2vl-prompt.js';
import { argmax } from '../../src/engine/sampling.js';
import { type Qwen2VlConfig, readQwen2VlConfig } from '../../src/model/qwen2vl-config.js';
import { openWeights } from '../../src/model/safetensors.js';
import type { GraphManifest } from '../../src/onnx/convert.js';
import type { WeightReader } from '../../src/onnx/layers.js';
import { buildDecoderSegment } from '../../src/onnx/llm-decoder.js';
import { writeModel } from '../../src/onnx/model-writer.js';
import { qwen2VlKeys } from '../../src/onnx/qwen2vl-keys.js';
import { buildQwen2VlGraphs, QWEN2VL_VISION_IO } from '../../src/onnx/qwen2vl-vision.js';
import { buildEmbedding, PROJECTOR_IO, VISION_IO } from '../../src/onnx/vision-encoder.js';
import { mergeOrderPositions } from '../../src/vision/qwen2vl-processor.js';
import { tempDir } from '../helpers/fixtures.js';
import { type Arr, type FamilyReference, readFixtureJson } from '../helpers/hf-reference.js';
import { maxRelativeError } from '../helpers/numeric.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/hf-reference/qwen2-vl-tiny');
const TOL = 1e-4;
const MAX_POSITIONS = 512;

interface Input {
  input_ids: number[];
  pixel_values?: Arr;
  pixel_values_videos?: Arr;
  image_grid_thw?: number[][];
  video_grid_thw?: number[][];
  n_new_tokens: number;
}
interface Reference extends FamilyReference {
  position_ids: Arr;
  rope_deltas: number;
  greedy_step_position: number[];
}

const readJson = <T>(file: string) => readFixtureJson<T>(DIR, file);

/** The ≥ 4.52 key layout (`model.visual.*`, `model.language_model.*`) served from the fixture's ≤ 4.51 file. */
function renamedToNewLayout(reader: WeightReader): WeightReader {
  const old = (name: string) =>
    name.replace(/^model\.visual\./, 'visual.').replace(/^model\.language_model\./, 'model.');
  return { has: (n) => reader.has(old(n)), shape: (n) => reader.shape(old(n)), get: (n) => reader.get(old(n)) };
}

interface Graphs {
  vision: Session;
  projector: Session;
  decoder: DecoderRunner;
}

async function openGraphs(config: Qwen2VlConfig, reader: WeightReader, boundaries: number[]): Promise<Graphs> {
  const dir = tempDir('qwen2vl');
  for (const [file, build] of buildQwen2VlGraphs(config, reader, 'fp32')) writeModel(build(), join(dir, file));
  const embed = buildEmbedding(reader, config.text.hiddenSize, 'fp32', qwen2VlKeys(reader).text);
  writeModel(embed, join(dir, 'embed.onnx'));
  const L = config.text.numLayers;
  const edges = [0, ...boundaries, L];
  const segments = edges.slice(0, -1).map((start, i) => {
    const spec = { start, end: edges[i + 1], lastTokenAttention: edges[i + 1] < L };
    const file = `decoder-${spec.start}-${spec.end}.onnx`;
    writeModel(
      buildDecoderSegment(config.text, reader, spec, 'fp32', MAX_POSITIONS, qwen2VlKeys(reader)),
      join(dir, file),
    );
    return { ...spec, file };
  });
  // DecoderRunner reads only these manifest fields.
  const manifest = {
    graphs: { embed: 'embed.onnx' },
    segments,
    config: { text: config.text },
  } as unknown as GraphManifest;
  return {
    vision: await createSession(join(dir, 'vision.onnx'), DEFAULT_RUNTIME),
    projector: await createSession(join(dir, 'projector.onnx'), DEFAULT_RUNTIME),
    decoder: await DecoderRunner.open(dir, manifest, DEFAULT_RUNTIME),
  };
}

async function releaseGraphs(graphs: Graphs): Promise<void> {
  await Promise.all([graphs.vision.release(), graphs.projector.release(), graphs.decoder.release()]);
}

async function runCase(config: Qwen2VlConfig, graphs: Graphs, name: 'image' | 'video') {
  const input = readJson<Input>(`input_${name}.json`);
  const ref = readJson<Reference>(`reference_${name}.json`);
  const pixels = input.pixel_values ?? input.pixel_values_videos;
  const [t, h, w] = (input.image_grid_thw ?? input.video_grid_thw ?? [])[0];
  assert.ok(pixels, 'fixture pixels');
  const m = config.vision.spatialMergeSize;

  const vision = await graphs.vision.run({
    [QWEN2VL_VISION_IO.pixels]: tensor.f32(Float32Array.from(pixels.data), [t, h * w, pixels.shape[1]]),
    [QWEN2VL_VISION_IO.patchPositions]: tensor.i64(mergeOrderPositions(h, w, m), [h * w, 2]),
  });
  const features = vision[VISION_IO.features];
  const rows = (t * h * w) / (m * m);
  const projected = await graphs.projector.run({
    [PROJECTOR_IO.features]: tensor.f32(features.data as Float32Array, [rows, features.dims[2]]),
  });
  const tokens = projected[PROJECTOR_IO.tokens].data as Float32Array;

  // The chat template writes one pad per visual; the processor expands it.
  const pad = name === 'image' ? config.imageTokenId : config.videoTokenId;
  const templateIds = input.input_ids.filter((id, i) => id !== pad || input.input_ids[i - 1] !== pad);
  const prompt = qwen2VlPrompt(templateIds, [{ kind: name, units: t, rows: h / m, cols: w / m }], config);

  const d = config.text.hiddenSize;
  const hidden = await graphs.decoder.embed(prompt.ids);
  const embeddingLastRow = hidden.slice(hidden.length - d);
  prompt.visualRows.forEach((row, i) => {
    hidden.set(tokens.subarray(i * d, (i + 1) * d), row * d);
  });
  let layerOutLastRow: Float32Array | undefined;
  const prefill = await graphs.decoder.prefill(hidden, prompt.positions, input.n_new_tokens, (state) => {
    layerOutLastRow ??= state.hidden.slice(state.hidden.length - d);
    return state;
  });
  const greedy = [argmax(prefill.logits)];
  const maxLogits = [Math.max(...prefill.logits)];
  const decodePositions: number[] = [];
  for (let k = 1; k < input.n_new_tokens; k++) {
    const position = qwen2VlDecodePosition(prompt.ids.length, prompt.ropeDelta, k - 1);
    decodePositions.push(position);
    const logits = await graphs.decoder.decode(greedy[k - 1], position);
    greedy.push(argmax(logits));
    maxLogits.push(Math.max(...logits));
  }
  return {
    input,
    ref,
    vision,
    tokens,
    prompt,
    logits: prefill.logits,
    greedy,
    maxLogits,
    decodePositions,
    embeddingLastRow,
    layerOutLastRow,
  };
}

/** Rows of HF's position_ids [3, 1, S] as the engine's flat [t, h, w] per row. */
function rowMajor(positionIds: Arr): number[] {
  const S = positionIds.shape[2];
  return Array.from({ length: 3 * S }, (_, k) => positionIds.data[(k % 3) * S + Math.floor(k / 3)]);
}

const config = readQwen2VlConfig(DIR);
const weights = openWeights(DIR);

for (const boundaries of [[], [1]]) {
  describe(`Qwen2-VL graphs match Hugging Face transformers with ${boundaries.length + 1} decoder segment(s)`, () => {
    let graphs: Graphs;
    before(async () => {
      graphs = await openGraphs(config, weights, boundaries);
    });
    after(() => releaseGraphs(graphs));

    for (const name of ['image', 'video'] as const) {
      it(`on the ${name} input`, async (ctx) => {
        const r = await runCase(config, graphs, name);
        const [t, h, w] = (r.input.image_grid_thw ?? r.input.video_grid_thw ?? [])[0];
        const tokensPerUnit = (h * w) / 4;

        assert.deepEqual(r.vision[VISION_IO.features].dims, [t, tokensPerUnit, 4 * config.vision.embedDim]);
        assert.deepEqual(r.vision[VISION_IO.saliency].dims, [t, tokensPerUnit]);
        assert.deepEqual(r.vision[VISION_IO.keys].dims, [t, tokensPerUnit, config.vision.embedDim]);
        const saliency = r.vision[VISION_IO.saliency].data as Float32Array;
        // Attention received, averaged over a unit's queries, sums to 1 over its patches; a token averages 4 of them.
        for (let u = 0; u < t; u++) {
          const sum = saliency.slice(u * tokensPerUnit, (u + 1) * tokensPerUnit).reduce((a, b) => a + b, 0);
          assert.ok(Math.abs(sum - 1 / 4) < 1e-5, `unit ${u}: saliency sums to ${sum}`);
        }

        const errors = {
          vision_features: maxRelativeError(
            r.vision[VISION_IO.features].data as Float32Array,
            r.ref.vision_features.data,
          ),
          image_features: maxRelativeError(r.tokens, r.ref.image_features.data),
          inserted_features: maxRelativeError(r.tokens, r.ref.inserted_features.data),
          last_logits: maxRelativeError(r.logits, r.ref.last_logits),
          greedy_step_max_logit: maxRelativeError(r.maxLogits, r.ref.greedy_step_max_logit),
          embeddings_last_pos: maxRelativeError(r.embeddingLastRow, r.ref.hidden_states_last_pos.data.slice(0, 32)),
        };
        if (r.layerOutLastRow) {
          Object.assign(errors, {
            layer0_last_pos: maxRelativeError(r.layerOutLastRow, r.ref.hidden_states_last_pos.data.slice(32, 64)),
          });
        }
        for (const [quantity, err] of Object.entries(errors))
          assert.ok(err < TOL, `${quantity}: relative error ${err}`);
        ctx.diagnostic(`max relative errors: ${JSON.stringify(errors)}`);

        assert.deepEqual(r.prompt.ids, r.input.input_ids);
        assert.deepEqual(r.prompt.positions, rowMajor(r.ref.position_ids));
        assert.equal(r.prompt.ropeDelta, r.ref.rope_deltas);
        assert.deepEqual(r.prompt.visualRows, r.ref.inserted_positions);
        assert.equal(r.prompt.spans[0].start, r.ref.inserted_positions[0]);
        assert.equal(r.prompt.nextPosition, r.ref.greedy_step_position[0]);
        assert.deepEqual(r.decodePositions, r.ref.greedy_step_position);
        assert.deepEqual(r.greedy, r.ref.greedy_tokens);
      });
    }
  });
}

describe('Qwen2-VL graphs read the transformers ≥ 4.52 key layout', () => {
  it('and compute the same image answer', async () => {
    const graphs = await openGraphs(config, renamedToNewLayout(weights), []);
    const r = await runCase(config, graphs, 'image');
    assert.ok(maxRelativeError(r.logits, r.ref.last_logits) < TOL);
    assert.deepEqual(r.greedy, r.ref.greedy_tokens);
    await releaseGraphs(graphs);
  });
});

import { join } from 'node:path';
import type { GraphManifest } from '../onnx/convert.js';
import { PROJECTOR_IO, VISION_IO } from '../onnx/vision-encoder.js';
import { DecoderRunner, type PositionIds, type PrefillResult, type SegmentHook } from './decoder-runner.js';
import { createSession, type RuntimeOptions, type Session, type Tensor, tensor } from './ort-session.js';
import { type InputTensor, type PostVision, unitSlice, type VisionInput } from './vision-input.js';

export interface VisionOutputs {
  frames: number;
  /** Visual tokens per frame, and the grid (rows × cols) they form. */
  tokens: number;
  gridRows: number;
  gridCols: number;
  /** [frames, tokens, featureWidth] the rows the projector takes. */
  features: Float32Array;
  featureWidth: number;
  /** [frames, tokens] patch saliency (CLS attention, or mean attention received). */
  saliency: Float32Array;
  /** [frames, tokens, keyWidth] feature-layer keys (all heads). */
  keys: Float32Array;
  keyWidth: number;
  /** Attention heads the keys split into (VisionZip averages over them). */
  keyHeads: number;
}

const VISION_OUTPUTS = [VISION_IO.features, VISION_IO.saliency, VISION_IO.keys];

function ortTensor(t: InputTensor): Tensor {
  if (t.type === 'int64') return tensor.i64(t.data, t.dims);
  return tensor.f32(t.data instanceof Float32Array ? t.data : Float32Array.from(t.data), t.dims);
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

interface Batch {
  data: Record<string, Float32Array>;
  dims: Record<string, readonly number[]>;
}

interface PostStep {
  session: Session;
  inputs: Record<string, Tensor>;
}

/** The post-vision graph over some units' vision outputs: each output goes in as `patch_<name>`. */
async function runPost(step: PostStep, out: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const feeds: Record<string, Tensor> = { ...step.inputs };
  for (const k of VISION_OUTPUTS) feeds[`patch_${k}`] = out[k];
  return step.session.run(feeds);
}

function asBatch(out: Record<string, Tensor>): Batch {
  return {
    data: Object.fromEntries(VISION_OUTPUTS.map((k) => [k, out[k].data as Float32Array])),
    dims: Object.fromEntries(VISION_OUTPUTS.map((k) => [k, out[k].dims])),
  };
}

function joinBatches(parts: Batch[]): Batch {
  const data = Object.fromEntries(VISION_OUTPUTS.map((k) => [k, concat(parts.map((p) => p.data[k]))]));
  const dims = Object.fromEntries(
    VISION_OUTPUTS.map((k) => [k, [parts.reduce((a, p) => a + p.dims[k][0], 0), ...parts[0].dims[k].slice(1)]]),
  );
  return { data, dims };
}

/**
 * Runs a converted checkpoint's graphs: the vision encoder, its optional post-vision graphs, the projector
 * (the identity when the manifest has none) and the separator row here; embeddings and decoder segments in
 * its DecoderRunner.
 */
export class VlmRunner {
  private constructor(
    readonly manifest: GraphManifest,
    /** Every graph session, released together. */
    private readonly sessions: Session[],
    private readonly vision: Session,
    private readonly projector: Session | undefined,
    private readonly post: Map<string, Session>,
    /** The row PromptLayout separator rows take (manifest.graphs.separator), computed once. */
    readonly separator: Float32Array | undefined,
    readonly decoder: DecoderRunner,
  ) {}

  static async open(dir: string, manifest: GraphManifest, runtime: RuntimeOptions): Promise<VlmRunner> {
    const load = (file: string) => createSession(join(dir, file), runtime);
    const g = manifest.graphs;
    const files = [
      g.vision,
      ...(g.projector ? [g.projector] : []),
      ...(g.post ?? []),
      ...(g.separator ? [g.separator] : []),
    ];
    // Every load is settled before a failure is reported: a session still being created when the caller
    // ends the worker thread aborts the process.
    const loads = await Promise.allSettled(files.map(load));
    const loaded = loads.flatMap((l) => (l.status === 'fulfilled' ? [l.value] : []));
    const failed = loads.find((l) => l.status === 'rejected');
    if (failed) {
      await Promise.all(loaded.map((session) => session.release()));
      throw failed.reason;
    }
    const session = new Map(files.map((f, i) => [f, loaded[i]]));
    const sessionOf = (file: string | undefined) => (file === undefined ? undefined : session.get(file));
    try {
      const separatorSession = sessionOf(g.separator);
      const separator = separatorSession
        ? ((await separatorSession.run({}))[separatorSession.outputNames[0]].data as Float32Array)
        : undefined;
      const post = new Map((g.post ?? []).map((f) => [f, session.get(f) as Session]));
      const decoder = await DecoderRunner.open(dir, manifest, runtime);
      return new VlmRunner(manifest, loaded, loaded[0], sessionOf(g.projector), post, separator, decoder);
    } catch (err) {
      await Promise.all(loaded.map((s) => s.release()));
      throw err;
    }
  }

  get config() {
    return this.manifest.config;
  }

  /**
   * Runs the vision graph over every unit, `input.batch` units at a time, then the post-vision graph: with
   * every batch when it keeps the units, once over all of them when it packs them.
   */
  async encode(input: VisionInput): Promise<VisionOutputs> {
    const postStep = input.post && this.postStep(input.post);
    const perBatch = input.post && input.post.units === input.units ? postStep : undefined;
    const parts: Batch[] = [];
    for (let u0 = 0; u0 < input.units; u0 += input.batch) {
      const n = Math.min(input.batch, input.units - u0);
      const feeds: Record<string, Tensor> = {};
      for (const [name, t] of Object.entries(input.perUnit)) feeds[name] = ortTensor(unitSlice(t, input.units, u0, n));
      for (const [name, t] of Object.entries(input.shared)) feeds[name] = ortTensor(t);
      const out = await this.vision.run(feeds);
      parts.push(asBatch(perBatch ? await runPost(perBatch, out) : out));
    }
    let joined = joinBatches(parts);
    if (postStep && !perBatch) {
      const all = Object.fromEntries(VISION_OUTPUTS.map((k) => [k, tensor.f32(joined.data[k], joined.dims[k])]));
      joined = asBatch(await runPost(postStep, all));
    }
    const units = input.post?.units ?? input.units;
    const tokens = input.gridRows * input.gridCols;
    const rows = units * tokens;
    return {
      frames: units,
      tokens,
      gridRows: input.gridRows,
      gridCols: input.gridCols,
      features: joined.data[VISION_IO.features],
      featureWidth: joined.data[VISION_IO.features].length / rows,
      saliency: joined.data[VISION_IO.saliency],
      keys: joined.data[VISION_IO.keys],
      keyWidth: joined.data[VISION_IO.keys].length / rows,
      keyHeads: this.manifest.visionHeads,
    };
  }

  private postStep(post: PostVision): PostStep {
    const session = this.post.get(post.graph);
    if (!session) throw new Error(`the vision input names the post-vision graph ${post.graph}, which is not loaded`);
    return { session, inputs: Object.fromEntries(Object.entries(post.inputs).map(([k, t]) => [k, ortTensor(t)])) };
  }

  /** Projects feature rows [rows, featureWidth] to LLM-width tokens [rows, hidden]. */
  async project(features: Float32Array, rows: number): Promise<Float32Array> {
    if (!this.projector) return features;
    const out = await this.projector.run({
      [PROJECTOR_IO.features]: tensor.f32(features, [rows, features.length / rows]),
    });
    return out[PROJECTOR_IO.tokens].data as Float32Array;
  }

  embed(ids: readonly number[]): Promise<Float32Array> {
    return this.decoder.embed(ids);
  }

  prefill(
    hidden: Float32Array,
    positions: PositionIds,
    maxNewTokens: number,
    between?: SegmentHook,
  ): Promise<PrefillResult> {
    return this.decoder.prefill(hidden, positions, maxNewTokens, between);
  }

  decode(tokenId: number, position: number): Promise<Float32Array> {
    return this.decoder.decode(tokenId, position);
  }

  kvBytes(): { reserved: number; used: number } {
    return this.decoder.kvBytes();
  }

  async release(): Promise<void> {
    await Promise.all([...this.sessions.map((s) => s.release()), this.decoder.release()]);
  }
}

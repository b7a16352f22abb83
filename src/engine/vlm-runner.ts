import { join } from 'node:path';
import type { GraphManifest } from '../onnx/convert.js';
import { PROJECTOR_IO, VISION_IO } from '../onnx/vision-encoder.js';
import { DecoderRunner, type PositionIds, type PrefillResult, type SegmentHook } from './decoder-runner.js';
import { createSession, type RuntimeOptions, type Session, type Tensor, tensor } from './ort-session.js';
import { type InputTensor, unitSlice, type VisionInput } from './vision-input.js';

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

/**
 * Runs a converted checkpoint's graphs: the vision encoder and projector here, embeddings and decoder
 * segments in its DecoderRunner.
 */
export class VlmRunner {
  private constructor(
    readonly manifest: GraphManifest,
    private readonly vision: Session,
    private readonly projector: Session,
    readonly decoder: DecoderRunner,
  ) {}

  static async open(dir: string, manifest: GraphManifest, runtime: RuntimeOptions): Promise<VlmRunner> {
    const load = (file: string) => createSession(join(dir, file), runtime);
    // Every load is settled before a failure is reported: a session still being created when the caller
    // ends the worker thread aborts the process.
    const loads = await Promise.allSettled([load(manifest.graphs.vision), load(manifest.graphs.projector)]);
    const loaded = loads.flatMap((l) => (l.status === 'fulfilled' ? [l.value] : []));
    const failed = loads.find((l) => l.status === 'rejected');
    if (failed) {
      await Promise.all(loaded.map((session) => session.release()));
      throw failed.reason;
    }
    const [vision, projector] = loaded;
    try {
      return new VlmRunner(manifest, vision, projector, await DecoderRunner.open(dir, manifest, runtime));
    } catch (err) {
      await Promise.all(loaded.map((session) => session.release()));
      throw err;
    }
  }

  get config() {
    return this.manifest.config;
  }

  /** Runs the vision graph over every unit, `input.batch` units at a time, then the optional post graph. */
  async encode(input: VisionInput): Promise<VisionOutputs> {
    const parts: Record<string, Float32Array>[] = [];
    for (let u0 = 0; u0 < input.units; u0 += input.batch) {
      const n = Math.min(input.batch, input.units - u0);
      const feeds: Record<string, Tensor> = {};
      for (const [name, t] of Object.entries(input.perUnit)) feeds[name] = ortTensor(unitSlice(t, input.units, u0, n));
      for (const [name, t] of Object.entries(input.shared)) feeds[name] = ortTensor(t);
      const out = await this.vision.run(feeds);
      parts.push(Object.fromEntries(VISION_OUTPUTS.map((k) => [k, out[k].data as Float32Array])));
    }
    const joined = Object.fromEntries(VISION_OUTPUTS.map((k) => [k, concat(parts.map((p) => p[k]))]));
    const tokens = input.gridRows * input.gridCols;
    const rows = input.units * tokens;
    return {
      frames: input.units,
      tokens,
      gridRows: input.gridRows,
      gridCols: input.gridCols,
      features: joined[VISION_IO.features],
      featureWidth: joined[VISION_IO.features].length / rows,
      saliency: joined[VISION_IO.saliency],
      keys: joined[VISION_IO.keys],
      keyWidth: joined[VISION_IO.keys].length / rows,
      keyHeads: this.manifest.visionHeads,
    };
  }

  /** Projects feature rows [rows, featureWidth] to LLM-width tokens [rows, hidden]. */
  async project(features: Float32Array, rows: number): Promise<Float32Array> {
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
    await Promise.all([this.vision.release(), this.projector.release(), this.decoder.release()]);
  }
}

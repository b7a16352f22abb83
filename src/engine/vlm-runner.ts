import { join } from 'node:path';
import type { GraphManifest } from '../onnx/convert.js';
import { PROJECTOR_IO, VISION_IO } from '../onnx/vision-encoder.js';
import { DecoderRunner, type PositionIds, type PrefillResult, type SegmentHook } from './decoder-runner.js';
import { createSession, type RuntimeOptions, type Session, tensor } from './ort-session.js';

export interface VisionOutputs {
  frames: number;
  /** Visual tokens per frame, and the grid (rows × cols) they form. */
  tokens: number;
  gridRows: number;
  gridCols: number;
  /** [frames, tokens, visionHidden] feature-layer hidden states. */
  features: Float32Array;
  /** [frames, tokens] patch saliency (CLS attention, or mean attention received). */
  saliency: Float32Array;
  /** [frames, tokens, visionHidden] feature-layer keys. */
  keys: Float32Array;
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

  /** Encodes frames [frames, 3, H, W] in batches of `batch` frames to bound activation memory. */
  async encodeImages(pixels: Float32Array, frames: number, batch = 8): Promise<VisionOutputs> {
    const v = this.config.vision;
    const perFrame = v.numChannels * v.imageSize * v.imageSize;
    const tokens = this.config.tokensPerImage;
    const features = new Float32Array(frames * tokens * v.hiddenSize);
    const saliency = new Float32Array(frames * tokens);
    const keys = new Float32Array(frames * tokens * v.hiddenSize);
    for (let f0 = 0; f0 < frames; f0 += batch) {
      const n = Math.min(batch, frames - f0);
      const input = tensor.f32(pixels.subarray(f0 * perFrame, (f0 + n) * perFrame), [
        n,
        v.numChannels,
        v.imageSize,
        v.imageSize,
      ]);
      const out = await this.vision.run({ [VISION_IO.pixels]: input });
      features.set(out[VISION_IO.features].data as Float32Array, f0 * tokens * v.hiddenSize);
      saliency.set(out[VISION_IO.saliency].data as Float32Array, f0 * tokens);
      keys.set(out[VISION_IO.keys].data as Float32Array, f0 * tokens * v.hiddenSize);
    }
    return { frames, tokens, gridRows: v.gridSize, gridCols: v.gridSize, features, saliency, keys };
  }

  /** Projects feature rows [rows, visionHidden] to LLM-width tokens [rows, hidden]. */
  async project(features: Float32Array, rows: number): Promise<Float32Array> {
    const out = await this.projector.run({
      [PROJECTOR_IO.features]: tensor.f32(features, [rows, this.config.projector.inputSize]),
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

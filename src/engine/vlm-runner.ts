import { join } from 'node:path';
import type { GraphManifest, SegmentEntry } from '../onnx/convert.js';
import { SEGMENT_IO } from '../onnx/llm-decoder.js';
import { EMBED_IO, PROJECTOR_IO, VISION_IO } from '../onnx/vision-encoder.js';
import { SegmentKvCache } from './kv-cache.js';
import { createSession, type RuntimeOptions, type Session, type Tensor, tensor } from './ort-session.js';

export interface VisionOutputs {
  frames: number;
  /** Visual tokens per frame. */
  tokens: number;
  /** [frames, tokens, visionHidden] feature-layer hidden states. */
  features: Float32Array;
  /** [frames, tokens] patch saliency (CLS attention, or mean attention received). */
  saliency: Float32Array;
  /** [frames, tokens, visionHidden] feature-layer keys. */
  keys: Float32Array;
}

/** What a decoder segment hands to the next one (and to a pruning method in between). */
export interface SegmentState {
  segment: SegmentEntry;
  /** [rows, hidden] hidden states leaving the segment. */
  hidden: Float32Array;
  /** RoPE position of each row (keep-original: gaps after pruning are expected). */
  positions: number[];
  /** κ of layer end−1 per row. */
  kappa: Float32Array;
  /** The last row's attention over all rows at layer end−1, averaged over heads (non-final segments). */
  lastTokenAttention?: Float32Array;
}

/** Called between segments; returns the rows the next segment receives (or the state unchanged). */
export type SegmentHook = (
  state: SegmentState,
) => { hidden: Float32Array; positions: number[] } | Promise<{ hidden: Float32Array; positions: number[] }>;

export interface PrefillResult {
  logits: Float32Array;
  /** Rows each segment processed. */
  segmentRows: number[];
}

/**
 * Runs a converted checkpoint's graphs: vision encoder, projector, embeddings and decoder segments with
 * their KV caches. Holds no request state beyond the current sequence's caches.
 */
export class VlmRunner {
  private caches: SegmentKvCache[] = [];

  private constructor(
    readonly manifest: GraphManifest,
    private readonly vision: Session,
    private readonly projector: Session,
    private readonly embedder: Session,
    private readonly segments: Session[],
  ) {}

  static async open(dir: string, manifest: GraphManifest, runtime: RuntimeOptions): Promise<VlmRunner> {
    const load = (file: string) => createSession(join(dir, file), runtime);
    // Every load is settled before a failure is reported: a session still being created when the caller
    // ends the worker thread aborts the process.
    const loads = await Promise.allSettled([
      load(manifest.graphs.vision),
      load(manifest.graphs.projector),
      load(manifest.graphs.embed),
    ]);
    const loaded = loads.flatMap((l) => (l.status === 'fulfilled' ? [l.value] : []));
    const failed = loads.find((l) => l.status === 'rejected');
    if (failed) {
      await Promise.all(loaded.map((session) => session.release()));
      throw failed.reason;
    }
    const [vision, projector, embedder] = loaded;
    const segments: Session[] = [];
    try {
      for (const s of manifest.segments) segments.push(await load(s.file));
    } catch (err) {
      await Promise.all([...loaded, ...segments].map((session) => session.release()));
      throw err;
    }
    return new VlmRunner(manifest, vision, projector, embedder, segments);
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
    return { frames, tokens, features, saliency, keys };
  }

  /** Projects feature rows [rows, visionHidden] to LLM-width tokens [rows, hidden]. */
  async project(features: Float32Array, rows: number): Promise<Float32Array> {
    const out = await this.projector.run({
      [PROJECTOR_IO.features]: tensor.f32(features, [rows, this.config.projector.inputSize]),
    });
    return out[PROJECTOR_IO.tokens].data as Float32Array;
  }

  async embed(ids: readonly number[]): Promise<Float32Array> {
    const out = await this.embedder.run({ [EMBED_IO.ids]: tensor.i64(ids, [1, ids.length]) });
    return out[EMBED_IO.embeddings].data as Float32Array;
  }

  /**
   * Runs the prompt through every segment, calling `between` after each non-final one. Each segment's
   * cache is allocated here for the rows it receives plus `maxNewTokens`.
   */
  async prefill(
    hidden: Float32Array,
    positions: number[],
    maxNewTokens: number,
    between?: SegmentHook,
  ): Promise<PrefillResult> {
    const t = this.config.text;
    this.caches = [];
    const segmentRows: number[] = [];
    let rowsIn = { hidden, positions };
    for (let i = 0; i < this.segments.length; i++) {
      const entry = this.manifest.segments[i];
      const rows = rowsIn.positions.length;
      const layers = Array.from({ length: entry.end - entry.start }, (_, j) => entry.start + j);
      const cache = new SegmentKvCache(layers, t.numKvHeads, t.headDim, rows + maxNewTokens);
      this.caches.push(cache);
      segmentRows.push(rows);
      const out = await this.runSegment(i, rowsIn.hidden, rowsIn.positions);
      if (i === this.segments.length - 1) return { logits: out[SEGMENT_IO.logits].data as Float32Array, segmentRows };
      const state: SegmentState = {
        segment: entry,
        hidden: out[SEGMENT_IO.hiddenOut].data as Float32Array,
        positions: rowsIn.positions,
        kappa: out[SEGMENT_IO.kappa].data as Float32Array,
        lastTokenAttention: out[SEGMENT_IO.lastTokenAttention]?.data as Float32Array | undefined,
      };
      rowsIn = between ? await between(state) : state;
    }
    throw new Error('a converted model has at least one decoder segment');
  }

  /** One generated token through every segment; returns the next-token logits. */
  async decode(tokenId: number, position: number): Promise<Float32Array> {
    let hidden = await this.embed([tokenId]);
    for (let i = 0; i < this.segments.length; i++) {
      const out = await this.runSegment(i, hidden, [position]);
      if (i === this.segments.length - 1) return out[SEGMENT_IO.logits].data as Float32Array;
      hidden = out[SEGMENT_IO.hiddenOut].data as Float32Array;
    }
    throw new Error('a converted model has at least one decoder segment');
  }

  /** KV bytes reserved and in use across segments. */
  kvBytes(): { reserved: number; used: number } {
    return this.caches.reduce((a, c) => ({ reserved: a.reserved + c.bytes, used: a.used + c.usedBytes }), {
      reserved: 0,
      used: 0,
    });
  }

  private async runSegment(index: number, hidden: Float32Array, positions: readonly number[]) {
    const cache = this.caches[index];
    const rows = positions.length;
    if (cache.length + rows > cache.capacity) {
      throw new Error(
        `segment ${index}: KV cache of ${cache.capacity} tokens cannot take ${rows} more after ${cache.length}`,
      );
    }
    const total = cache.length + rows;
    const feeds: Record<string, Tensor> = {
      [SEGMENT_IO.hidden]: tensor.f32(hidden, [1, rows, this.config.text.hiddenSize]),
      [SEGMENT_IO.positions]: tensor.i64(positions, [1, rows]),
      [SEGMENT_IO.seqlensK]: tensor.i32([total - 1], [1]),
      [SEGMENT_IO.totalLength]: tensor.i32([total], []),
    };
    const fetches: Record<string, Tensor | null> = {};
    for (const name of this.segments[index].outputNames) fetches[name] = null;
    cache.layers.forEach((layer, j) => {
      feeds[SEGMENT_IO.pastKey(layer)] = cache.keys[j];
      feeds[SEGMENT_IO.pastValue(layer)] = cache.values[j];
      fetches[SEGMENT_IO.presentKey(layer)] = cache.keys[j];
      fetches[SEGMENT_IO.presentValue(layer)] = cache.values[j];
    });
    const out = await this.segments[index].run(feeds, fetches);
    cache.length = total;
    return out;
  }

  async release(): Promise<void> {
    this.caches = [];
    await Promise.all([this.vision, this.projector, this.embedder, ...this.segments].map((s) => s.release()));
  }
}

import { join } from 'node:path';
import type { GraphManifest, SegmentEntry } from '../onnx/convert.js';
import { SEGMENT_IO } from '../onnx/llm-decoder.js';
import { EMBED_IO } from '../onnx/vision-encoder.js';
import { SegmentKvCache } from './kv-cache.js';
import { createSession, type RuntimeOptions, type Session, type Tensor, tensor } from './ort-session.js';

/**
 * RoPE position ids of prompt rows, flat and row-major: `axes` numbers per row — 1 for plain RoPE, 3 for
 * Qwen2-VL's M-RoPE ([t, h, w] of row 0, then row 1 …). Pruned rows simply drop out (keep-original).
 */
export type PositionIds = number[];

/** What a decoder segment hands to the next one (and to a pruning method in between). */
export interface SegmentState {
  segment: SegmentEntry;
  /** [rows, hidden] hidden states leaving the segment. */
  hidden: Float32Array;
  /** Position ids of each row (keep-original: gaps after pruning are expected). */
  positions: PositionIds;
  /** κ of layer end−1 per row. */
  kappa: Float32Array;
  /** The last row's attention over all rows at layer end−1, averaged over heads (non-final segments). */
  lastTokenAttention?: Float32Array;
}

/** Called between segments; returns the rows the next segment receives (or the state unchanged). */
export type SegmentHook = (
  state: SegmentState,
) => { hidden: Float32Array; positions: PositionIds } | Promise<{ hidden: Float32Array; positions: PositionIds }>;

export interface PrefillResult {
  logits: Float32Array;
  /** Rows each segment processed. */
  segmentRows: number[];
}

/**
 * The language-model half of a converted checkpoint: token embeddings and the decoder segments with
 * their KV caches. Holds no request state beyond the current sequence's caches.
 */
export class DecoderRunner {
  private caches: SegmentKvCache[] = [];

  private constructor(
    readonly manifest: GraphManifest,
    private readonly embedder: Session,
    private readonly segments: Session[],
  ) {}

  static async open(dir: string, manifest: GraphManifest, runtime: RuntimeOptions): Promise<DecoderRunner> {
    const sessions: Session[] = [];
    try {
      for (const file of [manifest.graphs.embed, ...manifest.segments.map((s) => s.file)]) {
        sessions.push(await createSession(join(dir, file), runtime));
      }
    } catch (err) {
      await Promise.all(sessions.map((s) => s.release()));
      throw err;
    }
    const [embedder, ...segments] = sessions;
    return new DecoderRunner(manifest, embedder, segments);
  }

  /** Position numbers per row: 3 with M-RoPE (`text.mropeSection`), else 1. */
  get positionAxes(): 1 | 3 {
    return this.manifest.config.text.mropeSection ? 3 : 1;
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
    positions: PositionIds,
    maxNewTokens: number,
    between?: SegmentHook,
  ): Promise<PrefillResult> {
    const t = this.manifest.config.text;
    this.caches = [];
    const segmentRows: number[] = [];
    let rowsIn = { hidden, positions };
    for (let i = 0; i < this.segments.length; i++) {
      const entry = this.manifest.segments[i];
      const rows = rowsIn.positions.length / this.positionAxes;
      const layers = Array.from({ length: entry.end - entry.start }, (_, j) => entry.start + j);
      this.caches.push(new SegmentKvCache(layers, t.numKvHeads, t.headDim, rows + maxNewTokens));
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
    const positions = new Array<number>(this.positionAxes).fill(position);
    for (let i = 0; i < this.segments.length; i++) {
      const out = await this.runSegment(i, hidden, positions);
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

  /** Plain RoPE: int64 [1, seq]. M-RoPE: int64 [3, 1, seq] (HF's layout: the t row, then h, then w). */
  private positionTensor(positions: PositionIds): Tensor {
    const axes = this.positionAxes;
    const rows = positions.length / axes;
    if (axes === 1) return tensor.i64(positions, [1, rows]);
    const byAxis = Array.from({ length: axes * rows }, (_, k) => positions[(k % rows) * axes + Math.floor(k / rows)]);
    return tensor.i64(byAxis, [axes, 1, rows]);
  }

  private async runSegment(index: number, hidden: Float32Array, positions: PositionIds) {
    const cache = this.caches[index];
    const rows = positions.length / this.positionAxes;
    if (cache.length + rows > cache.capacity) {
      throw new Error(
        `segment ${index}: KV cache of ${cache.capacity} tokens cannot take ${rows} more after ${cache.length}`,
      );
    }
    // The graph attends over a cache only in a one-row (decode) step; more rows are a prefill from empty.
    if (rows > 1 && cache.length > 0) {
      throw new Error(`segment ${index}: ${rows} rows after ${cache.length} cached; only a prefill runs several rows`);
    }
    const total = cache.length + rows;
    const feeds: Record<string, Tensor> = {
      [SEGMENT_IO.hidden]: tensor.f32(hidden, [1, rows, this.manifest.config.text.hiddenSize]),
      [SEGMENT_IO.positions]: this.positionTensor(positions),
      [SEGMENT_IO.seqlensK]: tensor.i32([total - 1], [1]),
      [SEGMENT_IO.totalLength]: tensor.i32([total], []),
    };
    cache.layers.forEach((layer, j) => {
      feeds[SEGMENT_IO.pastKey(layer)] = cache.keys[j];
      feeds[SEGMENT_IO.pastValue(layer)] = cache.values[j];
    });
    const out = await this.segments[index].run(feeds);
    const rowsOf = (name: (layer: number) => string) => cache.layers.map((l) => out[name(l)].data as Float32Array);
    cache.append(rowsOf(SEGMENT_IO.newKey), rowsOf(SEGMENT_IO.newValue), rows);
    return out;
  }

  async release(): Promise<void> {
    this.caches = [];
    await Promise.all([this.embedder, ...this.segments].map((s) => s.release()));
  }
}

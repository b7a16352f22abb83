import type { GraphManifest } from '../onnx/convert.js';
import type { WeightDtype } from '../onnx/layers.js';

/** What one query puts through the graphs: the shape the planner predicts memory from. */
export interface QueryShape {
  /** Visual units (llava: frames) and LLM tokens per unit before pruning. */
  units: number;
  tokensPerUnit: number;
  /** Prompt rows that are not visual tokens. */
  textRows: number;
  /** Visual tokens entering each decoder layer 0..L−1 (the pruning method's plan). */
  visualPerLayer: readonly number[];
  maxNewTokens: number;
}

/** Predicted peak resident bytes of a query, by what holds them. */
export interface PeakEstimate {
  /** The process with ONNX Runtime loaded and the pipeline's own code and buffers, measured per EP. */
  baseline: number;
  /** The graphs' weights as ONNX Runtime holds them. */
  weights: number;
  /** Every decoder segment's KV cache at its pruned length plus the answer. */
  kv: number;
  /** Intermediate tensors of the graphs at their largest. */
  activations: number;
  /** Pixels, features and hidden rows on the JavaScript side. */
  host: number;
  total: number;
}

/**
 * Bytes ONNX Runtime holds per byte of weights stored in the graph files: fp32 as stored; fp16 weights are
 * cast to fp32 when the session is optimised (and part of the fp16 copy stays mapped); the int8/int4
 * MatMulNBits blocks are repacked, and the fp32 parts (vision tower, norms) are a larger share. Measured
 * with `sieve ask --json` on a random checkpoint of Qwen2-0.5B's shape (docs/benchmarks.md).
 */
export const LOADED_PER_STORED: Record<WeightDtype, number> = { fp32: 1, fp16: 2.4, int8: 1.2, int4: 1.1 };

/**
 * Float32 rows per prompt row a decoder segment's allocator keeps after its prefill: the MLP's gate, up
 * and product (3 × intermediate) and the residual stream's norms, projections and sums (8 × hidden).
 * Calibrated on the demo model and on Qwen2-0.5B's shape (test/engine/memory-calibration.test.ts).
 */
const RETAINED_MLP_ROWS = 3;
const RETAINED_HIDDEN_ROWS = 8;

/**
 * Share of the attention probabilities [heads, S, S+new] resident at the decoder's peak: the demo model's
 * peak grows by about half the full tensor from 16 to 30 frames (GroupQueryAttention works through
 * the heads in parallel chunks). Calibrated like the rows above.
 */
const ATTENTION_RESIDENT = 0.5;

/**
 * What the pipeline holds beyond the runtime baseline's probe before any query: the model's sessions and
 * their thread pools, the tokenizer and template, decoded frames. Calibrated like the rows above.
 */
const PIPELINE_BYTES = 28 * 1024 * 1024;

/** Units the llava vision graph runs at once (src/family/llava-family.ts). */
const LLAVA_UNITS_PER_RUN = 8;

interface VisionShape {
  /** Sequence length of one unit inside the vision tower. */
  patches: number;
  width: number;
  intermediate: number;
  heads: number;
  unitsPerRun: number;
  /** Float32 pixel values of one unit. */
  pixelValues: number;
  /** Width of the rows the projector takes. */
  featureWidth: number;
}

function visionShape(manifest: GraphManifest, tokensPerUnit: number): VisionShape {
  const config = manifest.config;
  if (config.modelType === 'qwen2_vl') {
    const v = config.vision;
    const merge = v.spatialMergeSize ** 2;
    const patches = tokensPerUnit * merge;
    return {
      patches,
      width: v.embedDim,
      intermediate: v.intermediateSize,
      heads: v.numHeads,
      unitsPerRun: 1,
      pixelValues: patches * v.inChannels * v.temporalPatchSize * v.patchSize ** 2,
      featureWidth: v.embedDim * merge,
    };
  }
  // llava's calibration; OneVision and Idefics3 towers are sized the same way (one frame a unit).
  const v = config.vision;
  const side = Math.floor(v.imageSize / v.patchSize);
  return {
    patches: side * side + ('hasClassToken' in v && v.hasClassToken ? 1 : 0),
    width: v.hiddenSize,
    intermediate: v.intermediateSize,
    heads: v.numHeads,
    unitsPerRun: LLAVA_UNITS_PER_RUN,
    pixelValues: v.numChannels * v.imageSize ** 2,
    featureWidth: v.hiddenSize,
  };
}

/** Prompt rows each decoder segment receives (the visual count of its first layer plus the text). */
export function segmentRows(manifest: GraphManifest, shape: QueryShape): number[] {
  return manifest.segments.map((s) => shape.textRows + (shape.visualPerLayer[s.start] ?? 0));
}

/**
 * The peak resident bytes of one query, predicted from the graph manifest. What the process holds at
 * its peak: the baseline, the weights, every segment's KV cache (all are alive while the answer is
 * generated), what each segment's allocator keeps of its prefill (linear in its rows), the single
 * largest transient tensor — the attention probabilities [heads, S, S+new] of the longest segment or
 * [units, heads, P, P] of the vision tower, which the allocator hands back when freed — and the host's
 * copies of pixels, features and hidden rows.
 */
export function predictPeak(manifest: GraphManifest, shape: QueryShape, baselineBytes: number): PeakEstimate {
  const t = manifest.config.text;
  const f32 = 4;
  const rows = segmentRows(manifest, shape);
  const weights = Object.values(manifest.weightBytes).reduce((a, b) => a + b, 0) * LOADED_PER_STORED[manifest.dtype];
  const kv = manifest.segments.reduce(
    (acc, s, i) => acc + 2 * (s.end - s.start) * t.numKvHeads * (rows[i] + shape.maxNewTokens) * t.headDim * f32,
    0,
  );
  const retainedPerRow = (RETAINED_MLP_ROWS * t.intermediateSize + RETAINED_HIDDEN_ROWS * t.hiddenSize) * f32;
  const retained = rows.reduce((acc, r) => acc + r * retainedPerRow, 0);
  const decoderAttention =
    ATTENTION_RESIDENT * Math.max(...rows.map((r) => t.numHeads * r * (r + shape.maxNewTokens) * f32));

  const v = visionShape(manifest, shape.tokensPerUnit);
  const perRun = Math.min(shape.units, v.unitsPerRun);
  const visionAttention = perRun * v.heads * v.patches * v.patches * f32;
  const visionRetained = perRun * v.patches * (2 * v.intermediate + 6 * v.width) * f32;
  const activations = retained + Math.max(decoderAttention, visionAttention) + visionRetained;

  // Pixels and vision outputs exist on both threads (posting copies them); hidden rows a few times over.
  const visualRows = shape.units * shape.tokensPerUnit;
  const host =
    PIPELINE_BYTES +
    2 * shape.units * v.pixelValues * f32 +
    2 * visualRows * 2 * v.featureWidth * f32 +
    4 * (visualRows + shape.textRows) * t.hiddenSize * f32;

  const total = baselineBytes + weights + kv + activations + host;
  return { baseline: baselineBytes, weights, kv, activations, host, total };
}

/** A configuration of a query the planner may choose. */
export interface QuerySettings {
  frames: number;
  /** Pruning budget (layer-averaged fraction kept); 1 when nothing is pruned. */
  budget: number;
  maxNewTokens: number;
}

export interface MemoryPlan {
  settings: QuerySettings;
  predictedBytes: number;
  /** What was lowered from the request to fit, in the order it was lowered. */
  degraded: ('frames' | 'budget' | 'context')[];
}

export type MemoryFit =
  | { fits: true; plan: MemoryPlan }
  /** Nothing fits: the smallest configuration tried and what it needs. */
  | { fits: false; smallest: QuerySettings; smallestBytes: number };

/** Pruning budgets the planner steps down through (ViTCoP's published settings, then one per 18). */
export const BUDGET_STEPS: readonly number[] = [1, 0.5, 1 / 3, 2 / 9, 1 / 9, 1 / 18];

/** Shortest answers the planner degrades the context to, halving max_new_tokens down to this. */
const MIN_NEW_TOKENS = 1;

/**
 * Chooses the settings that fit `budgetBytes`, degrading frames first (the most that fit), then the
 * pruning budget (only when a method prunes: `budgets` lists the ones it can reach, highest first),
 * then the answer's length. `predict` gives the peak of a configuration, or undefined when the method
 * cannot run it. Predictions grow with frames, budget and answer length, so frames are bisected.
 */
export function fitMemoryBudget(
  requested: QuerySettings,
  budgets: readonly number[],
  budgetBytes: number,
  predict: (s: QuerySettings) => number | undefined,
): MemoryFit {
  const fits = (s: QuerySettings) => {
    const bytes = predict(s);
    return bytes !== undefined && bytes <= budgetBytes;
  };
  const first = predict(requested);
  if (first !== undefined && first <= budgetBytes) return { fits: true, plan: planOf(requested, first, requested) };
  const lower = [requested.budget, ...budgets.filter((b) => b < requested.budget)];
  let tokens = requested.maxNewTokens;
  for (;;) {
    for (const budget of lower) {
      const frames = mostFrames({ ...requested, budget, maxNewTokens: tokens }, fits);
      if (frames > 0) {
        const settings = { frames, budget, maxNewTokens: tokens };
        return { fits: true, plan: planOf(settings, predict(settings) ?? 0, requested) };
      }
    }
    if (tokens <= MIN_NEW_TOKENS) break;
    tokens = Math.max(MIN_NEW_TOKENS, Math.floor(tokens / 2));
  }
  // The lowest budget the method can run (a method may not reach the lowest steps at one frame).
  const candidates = lower.map((budget) => ({ frames: 1, budget, maxNewTokens: MIN_NEW_TOKENS }));
  const runnable = candidates.filter((s) => predict(s) !== undefined);
  const smallest = runnable[runnable.length - 1] ?? candidates[0];
  return { fits: false, smallest, smallestBytes: predict(smallest) ?? Number.POSITIVE_INFINITY };
}

/** The most frames ≤ requested that fit, or 0. */
function mostFrames(s: QuerySettings, fits: (s: QuerySettings) => boolean): number {
  if (!fits({ ...s, frames: 1 })) return 0;
  let lo = 1;
  let hi = s.frames;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits({ ...s, frames: mid })) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function planOf(settings: QuerySettings, predictedBytes: number, requested: QuerySettings): MemoryPlan {
  const degraded: MemoryPlan['degraded'] = [];
  if (settings.frames < requested.frames) degraded.push('frames');
  if (settings.budget < requested.budget) degraded.push('budget');
  if (settings.maxNewTokens < requested.maxNewTokens) degraded.push('context');
  return { settings, predictedBytes, degraded };
}

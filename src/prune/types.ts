/**
 * The contract between pruning methods and the engine (methods.md, design §1). Methods are pure
 * functions over typed arrays: they never touch ONNX Runtime, except through the Pairwise kernel the
 * engine hands them for N²·d math.
 *
 * Tokens are named by their id in the unpruned visual sequence: frame f, patch p → f·N + p, in prompt
 * order. A stage returns slots; the engine turns each slot into one row of the next stage's input.
 */

/** How a slot's row is made from its members' current rows. */
export type SlotMode =
  /** One member, kept as it is. */
  | 'keep'
  /** Mean of the members' rows. */
  | 'mean'
  /**
   * The anchor's row plus the mean of the members' rows (ViTCoP released code: the anchor is a member;
   * VisionZip contextual: the anchor is the target and the members are the tokens assigned to it).
   */
  | 'anchor_plus_mean';

export interface Slot {
  /** Original token ids whose current rows form this slot (one for 'keep'). */
  members: number[];
  mode: SlotMode;
  /** For 'anchor_plus_mean': the token whose row is the anchor; it enters the mean only if it is also a member. */
  anchor?: number;
  /**
   * Original token id whose RoPE position the slot takes (keep-original positions; merged: upper
   * median of members and anchor).
   */
  positionOf: number;
}

/** The visual tokens alive at some point, in prompt order, with the signals measured on them. */
export interface VisualTokens {
  frames: number;
  /** Tokens per frame before any pruning (N) and the patch grid they come from. */
  tokensPerFrame: number;
  gridRows: number;
  gridCols: number;
  /** Original ids of the tokens alive now, ascending. Row i of every array below belongs to ids[i]. */
  ids: number[];
}

/** Encoder-side signals (before the projector), rows aligned with `ids`. */
export interface EncoderSignals extends VisualTokens {
  /** The rows the projector takes [rows, featureWidth] (a 2×2 merge group's patches side by side in Qwen2-VL). */
  features: Float32Array;
  featureWidth: number;
  /** Patch saliency [rows]: CLS attention (CLIP) or mean attention received (SigLIP). */
  saliency: Float32Array;
  /** Feature-layer keys [rows, dv], all heads concatenated (averaged over a merge group). */
  keys: Float32Array;
  visionHidden: number;
  visionHeads: number;
}

/** Signals at the LLM input (after the projector), rows aligned with `ids`. */
export interface InputSignals extends VisualTokens {
  /** Projected visual tokens [rows, d]. */
  tokens: Float32Array;
  hidden: number;
  /** The last `textTail` text tokens' embeddings [textTail, d] (DART's text pivots). */
  textTail: Float32Array;
}

/** Signals at an LLM boundary layer, rows aligned with `ids` (visual rows only). */
export interface LayerSignals extends VisualTokens {
  layer: number;
  /** κ of layer−1 per visual row (smaller = more important). */
  kappa: Float32Array;
  /** The last prompt token's attention to each visual row at layer−1, averaged over heads (FastV). */
  lastTokenAttention?: Float32Array;
}

/** G-Prune's graph (methods.md §2): edges where cosine ≥ threshold, softmax(C/temperature) over them. */
export interface PropagationOptions {
  threshold: number;
  temperature: number;
  iterations: number;
}

/** G-Prune's propagation for `batch` independent groups of n tokens, each array [batch, n]. */
export interface Propagation {
  /** I⁰: the tokens' L2 norms. */
  initial: Float32Array;
  /** I after the iterations (I ← I·P, P row-stochastic, so Σ I is conserved). */
  information: Float32Array;
  /** Edges per token, self-loop included. */
  degree: Float32Array;
}

/** N²·d math on the engine's fast kernel (ONNX Runtime MatMul), so methods never loop pairwise in JS. */
export interface Pairwise {
  /** Cosine similarity of every row pair: x [n, d] → [n, n]. */
  cosine(x: Float32Array, n: number, d: number): Promise<Float32Array>;
  /** Euclidean distance of every row pair: x [n, d] → [n, n]. */
  euclidean(x: Float32Array, n: number, d: number): Promise<Float32Array>;
  /** Cosine similarity of every row of x [n, d] with every row of y [m, d] → [n, m]. */
  crossCosine(x: Float32Array, n: number, y: Float32Array, m: number, d: number): Promise<Float32Array>;
  /** G-Prune's information propagation on each of `batch` groups: x [batch, n, d]. */
  propagate(x: Float32Array, batch: number, n: number, d: number, opts: PropagationOptions): Promise<Propagation>;
}

/** What a method was asked for, and the model facts that set its counts. */
export interface BudgetRequest {
  /** Target layer-averaged fraction π of the F·N visual tokens, in (0, 1]. */
  budget: number;
  frames: number;
  tokensPerFrame: number;
  /** Decoder layers L. */
  numLayers: number;
  seed: number;
}

/** A stage's answer: the slots that become the next stage's rows, in prompt order of positionOf. */
export interface StageResult {
  slots: Slot[];
  /**
   * Provenance only (ViTCoP Stage 0): a kept token that also stands for the static copies of its patch
   * dropped from later frames, up to and including `lastFrame`.
   */
  timeSpans?: { id: number; lastFrame: number }[];
}

/**
 * A pruning method. Each stage is optional; the engine calls the ones a method has, in this order:
 * encoder (feature layer, before the projector) → input (projected tokens, before the LLM) →
 * layer (at each boundary in `layers`, inside the LLM). Stateless between queries.
 */
export interface PruneMethod {
  readonly name: string;
  /** LLM layers at which `layer` is called (they become decoder segment boundaries). */
  layers(numLayers: number): number[];
  encoder?(signals: EncoderSignals, pairwise: Pairwise): Promise<StageResult>;
  input?(signals: InputSignals, pairwise: Pairwise): Promise<StageResult>;
  layer?(signals: LayerSignals, pairwise: Pairwise): Promise<StageResult>;
  /** Visual tokens entering each decoder layer 0..L−1 if the method gets what it plans (for reporting). */
  plannedTokensPerLayer(): number[];
}

/** Builds a method for one query's budget; options come from config (methods.md defaults). */
export type MethodFactory = (request: BudgetRequest, options: Record<string, unknown>) => PruneMethod;

/**
 * A plain TypeScript forward pass of a Hugging Face llava checkpoint (transformers 4.46 semantics),
 * written for clarity, not speed: tests compare the ONNX graphs against it on tiny models.
 * Activations are stored as float32 with float64 accumulation.
 */
import type { WeightStore } from '../../src/model/safetensors.js';
import type { Activation, VlmConfig } from '../../src/model/vlm-config.js';

export interface VisionOutput {
  /** hidden_states[featureLayer] after the select strategy: [N, visionHidden]. */
  features: Float32Array;
  /**
   * Per selected token, at encoder layer featureLayer − 1: CLIP, the CLS query's attention summed over
   * heads; SigLIP, the mean attention received over all queries and heads. [N]
   */
  clsAttention: Float32Array;
  /** That layer's key projection (with bias, all heads concatenated) for the selected tokens: [N, visionHidden]. */
  keys: Float32Array;
  tokens: number;
}

/** One layer's cache: [numKvHeads, length, headDim], keys after RoPE. */
export interface LayerKv {
  k: Float32Array;
  v: Float32Array;
  length: number;
}

export interface DecoderOutput {
  hidden: Float32Array;
  /** Per layer of [from, to): past + new entries. */
  present: LayerKv[];
  /** Per layer, per new token: ‖mean over KV heads of the key projection‖₂, before RoPE. */
  kappa: Float32Array[];
  /** Per layer: the last new token's attention over all keys (past + new), averaged over heads. */
  lastAttention: Float32Array[];
  /** When `to` is the last layer: final norm + lm_head at the last position. */
  logits?: Float32Array;
}

const VISION = 'vision_tower.vision_model';
const TEXT = 'language_model.model';

export class LlavaReference {
  /** Every tensor name the forward passes have read so far. */
  readonly readNames = new Set<string>();
  private readonly cache = new Map<string, Float32Array>();

  constructor(
    readonly config: VlmConfig,
    private readonly weights: Pick<WeightStore, 'get' | 'has'>,
  ) {}

  private w(name: string): Float32Array {
    let t = this.cache.get(name);
    if (!t) {
      t = this.weights.get(name);
      this.cache.set(name, t);
      this.readNames.add(name);
    }
    return t;
  }

  private linear(x: Float32Array, rows: number, prefix: string, bias: boolean): Float32Array {
    return linear(x, rows, this.w(`${prefix}.weight`), bias ? this.w(`${prefix}.bias`) : null);
  }

  /** One frame, pixel values [channels, imageSize, imageSize] already normalised. */
  vision(pixels: Float32Array): VisionOutput {
    const v = this.config.vision;
    const H = v.hiddenSize;
    const p = v.patchSize;
    const S = v.imageSize;
    const grid = v.gridSize;
    const cls = v.hasClassToken ? 1 : 0;
    const T = grid * grid + cls;

    let x: Float32Array = new Float32Array(T * H);
    const patchW = this.w(`${VISION}.embeddings.patch_embedding.weight`);
    const patchB = v.family === 'siglip' ? this.w(`${VISION}.embeddings.patch_embedding.bias`) : null;
    for (let r = 0; r < grid; r++) {
      for (let c = 0; c < grid; c++) {
        const tok = cls + r * grid + c;
        for (let h = 0; h < H; h++) {
          let s = patchB ? patchB[h]! : 0;
          for (let ch = 0; ch < v.numChannels; ch++) {
            for (let ky = 0; ky < p; ky++) {
              for (let kx = 0; kx < p; kx++) {
                s +=
                  patchW[((h * v.numChannels + ch) * p + ky) * p + kx]! *
                  pixels[(ch * S + r * p + ky) * S + c * p + kx]!;
              }
            }
          }
          x[tok * H + h] = s;
        }
      }
    }
    if (cls) x.set(this.w(`${VISION}.embeddings.class_embedding`), 0);
    const pos = this.w(`${VISION}.embeddings.position_embedding.weight`);
    for (let i = 0; i < T * H; i++) x[i] = x[i]! + pos[i]!;
    if (cls)
      x = layerNorm(
        x,
        T,
        this.w(`${VISION}.pre_layrnorm.weight`),
        this.w(`${VISION}.pre_layrnorm.bias`),
        v.layerNormEps,
      );

    const heads = v.numHeads;
    const hd = H / heads;
    let probe: { probs: Float32Array; keys: Float32Array } | null = null;
    for (let l = 0; l < v.featureLayer; l++) {
      const pre = `${VISION}.encoder.layers.${l}`;
      const h1 = layerNorm(
        x,
        T,
        this.w(`${pre}.layer_norm1.weight`),
        this.w(`${pre}.layer_norm1.bias`),
        v.layerNormEps,
      );
      const q = this.linear(h1, T, `${pre}.self_attn.q_proj`, true);
      const k = this.linear(h1, T, `${pre}.self_attn.k_proj`, true);
      const val = this.linear(h1, T, `${pre}.self_attn.v_proj`, true);
      const probs = new Float32Array(heads * T * T);
      const ctx = new Float32Array(T * H);
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < T; i++) {
          const row = probs.subarray((h * T + i) * T, (h * T + i + 1) * T);
          for (let j = 0; j < T; j++) row[j] = dot(q, i * H + h * hd, k, j * H + h * hd, hd) / Math.sqrt(hd);
          softmaxInPlace(row);
          for (let d = 0; d < hd; d++) {
            let s = 0;
            for (let j = 0; j < T; j++) s += row[j]! * val[j * H + h * hd + d]!;
            ctx[i * H + h * hd + d] = s;
          }
        }
      }
      if (l === v.featureLayer - 1) probe = { probs, keys: k };
      x = add(x, this.linear(ctx, T, `${pre}.self_attn.out_proj`, true));
      const h2 = layerNorm(
        x,
        T,
        this.w(`${pre}.layer_norm2.weight`),
        this.w(`${pre}.layer_norm2.bias`),
        v.layerNormEps,
      );
      const up = activate(this.linear(h2, T, `${pre}.mlp.fc1`, true), v.act);
      x = add(x, this.linear(up, T, `${pre}.mlp.fc2`, true));
    }

    const first = v.selectStrategy === 'default' ? 1 : 0;
    const N = T - first;
    const score = new Float32Array(N);
    for (let n = 0; n < N; n++) {
      const j = n + first;
      let s = 0;
      for (let h = 0; h < heads; h++) {
        if (v.hasClassToken) s += probe!.probs[h * T * T + j]!;
        else for (let i = 0; i < T; i++) s += probe!.probs[(h * T + i) * T + j]!;
      }
      score[n] = v.hasClassToken ? s : s / (heads * T);
    }
    return { features: x.slice(first * H), clsAttention: score, keys: probe!.keys.slice(first * H), tokens: N };
  }

  /** multi_modal_projector: linear_1, act, linear_2. features [n, visionHidden] → [n, textHidden]. */
  project(features: Float32Array, n: number): Float32Array {
    const pj = this.config.projector;
    const mid = activate(this.linear(features, n, 'multi_modal_projector.linear_1', pj.bias), pj.act);
    return this.linear(mid, n, 'multi_modal_projector.linear_2', pj.bias);
  }

  embed(ids: readonly number[]): Float32Array {
    const D = this.config.text.hiddenSize;
    const table = this.w(`${TEXT}.embed_tokens.weight`);
    const out = new Float32Array(ids.length * D);
    for (const [t, id] of ids.entries()) out.set(table.subarray(id * D, (id + 1) * D), t * D);
    return out;
  }

  /** Token embeddings with each image token's row replaced, in order, by the rows of `imageFeatures`. */
  embedPrompt(ids: readonly number[], imageFeatures: Float32Array): Float32Array {
    const D = this.config.text.hiddenSize;
    const out = this.embed(ids);
    let next = 0;
    ids.forEach((id, t) => {
      if (id !== this.config.imageTokenId) return;
      out.set(imageFeatures.subarray(next * D, (next + 1) * D), t * D);
      next++;
    });
    if (next * D !== imageFeatures.length)
      throw new Error(`prompt has ${next} image tokens, features have ${imageFeatures.length / D} rows`);
    return out;
  }

  /**
   * Decoder layers [from, to) over `hidden` [T, D] at explicit RoPE `positions`, attending to `past`
   * (one entry per layer of the range) and causally (in sequence order) to the new tokens.
   */
  decode(
    hidden: Float32Array,
    positions: readonly number[],
    { from = 0, to = this.config.text.numLayers, past }: { from?: number; to?: number; past?: LayerKv[] } = {},
  ): DecoderOutput {
    const c = this.config.text;
    const D = c.hiddenSize;
    const T = positions.length;
    const hd = c.headDim;
    const nH = c.numHeads;
    const nKv = c.numKvHeads;
    const group = nH / nKv;
    const rope = ropeTables(positions, hd, c.ropeTheta);
    let x = hidden;
    const out: DecoderOutput = { hidden, present: [], kappa: [], lastAttention: [] };

    for (let l = from; l < to; l++) {
      const pre = `${TEXT}.layers.${l}`;
      const h1 = rmsNorm(x, T, this.w(`${pre}.input_layernorm.weight`), c.rmsNormEps);
      const q = this.linear(h1, T, `${pre}.self_attn.q_proj`, c.qkvBias);
      const k = this.linear(h1, T, `${pre}.self_attn.k_proj`, c.qkvBias);
      const v = this.linear(h1, T, `${pre}.self_attn.v_proj`, c.qkvBias);

      const kappa = new Float32Array(T);
      for (let t = 0; t < T; t++) {
        let sq = 0;
        for (let d = 0; d < hd; d++) {
          let m = 0;
          for (let g = 0; g < nKv; g++) m += k[(t * nKv + g) * hd + d]!;
          sq += (m / nKv) ** 2;
        }
        kappa[t] = Math.sqrt(sq);
      }
      out.kappa.push(kappa);
      applyRope(q, T, nH, hd, rope);
      applyRope(k, T, nKv, hd, rope);

      const prev = past?.[l - from];
      const P = prev?.length ?? 0;
      const S = P + T;
      const kv: LayerKv = { k: new Float32Array(nKv * S * hd), v: new Float32Array(nKv * S * hd), length: S };
      for (let g = 0; g < nKv; g++) {
        if (prev) {
          kv.k.set(prev.k.subarray(g * P * hd, (g + 1) * P * hd), g * S * hd);
          kv.v.set(prev.v.subarray(g * P * hd, (g + 1) * P * hd), g * S * hd);
        }
        for (let t = 0; t < T; t++) {
          kv.k.set(k.subarray((t * nKv + g) * hd, (t * nKv + g + 1) * hd), (g * S + P + t) * hd);
          kv.v.set(v.subarray((t * nKv + g) * hd, (t * nKv + g + 1) * hd), (g * S + P + t) * hd);
        }
      }
      out.present.push(kv);

      const ctx = new Float32Array(T * nH * hd);
      const lastRow = new Float32Array(S);
      for (let h = 0; h < nH; h++) {
        const g = Math.floor(h / group);
        for (let t = 0; t < T; t++) {
          const visible = P + t + 1;
          const row = new Float32Array(visible);
          for (let j = 0; j < visible; j++)
            row[j] = dot(q, (t * nH + h) * hd, kv.k, (g * S + j) * hd, hd) / Math.sqrt(hd);
          softmaxInPlace(row);
          for (let d = 0; d < hd; d++) {
            let s = 0;
            for (let j = 0; j < visible; j++) s += row[j]! * kv.v[(g * S + j) * hd + d]!;
            ctx[(t * nH + h) * hd + d] = s;
          }
          if (t === T - 1) for (let j = 0; j < visible; j++) lastRow[j] = lastRow[j]! + row[j]! / nH;
        }
      }
      out.lastAttention.push(lastRow);
      x = add(x, this.linear(ctx, T, `${pre}.self_attn.o_proj`, c.oProjBias));

      const h2 = rmsNorm(x, T, this.w(`${pre}.post_attention_layernorm.weight`), c.rmsNormEps);
      const gate = activate(this.linear(h2, T, `${pre}.mlp.gate_proj`, c.mlpBias), c.act);
      const up = this.linear(h2, T, `${pre}.mlp.up_proj`, c.mlpBias);
      for (let i = 0; i < gate.length; i++) gate[i] = gate[i]! * up[i]!;
      x = add(x, this.linear(gate, T, `${pre}.mlp.down_proj`, c.mlpBias));
    }
    out.hidden = x;

    if (to === c.numLayers) {
      const last = rmsNorm(x.slice((T - 1) * D), 1, this.w(`${TEXT}.norm.weight`), c.rmsNormEps);
      const head = c.tieWordEmbeddings
        ? this.w(`${TEXT}.embed_tokens.weight`)
        : this.w('language_model.lm_head.weight');
      out.logits = linear(last, 1, head, null);
    }
    return out;
  }
}

/** Greedy decoding with the KV cache; ties go to the lowest id; no EOS stop. */
export function greedyGenerate(
  ref: LlavaReference,
  inputEmbeds: Float32Array,
  maxNewTokens: number,
): { tokens: number[]; maxLogits: number[] } {
  const T = inputEmbeds.length / ref.config.text.hiddenSize;
  let step = ref.decode(
    inputEmbeds,
    Array.from({ length: T }, (_, i) => i),
  );
  const tokens: number[] = [];
  const maxLogits: number[] = [];
  for (let n = 0; n < maxNewTokens; n++) {
    const logits = step.logits!;
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    tokens.push(best);
    maxLogits.push(logits[best]!);
    if (n + 1 < maxNewTokens) step = ref.decode(ref.embed([best]), [T + n], { past: step.present });
  }
  return { tokens, maxLogits };
}

function linear(x: Float32Array, rows: number, weight: Float32Array, bias: Float32Array | null): Float32Array {
  const inp = x.length / rows;
  const outDim = weight.length / inp;
  const out = new Float32Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++)
      out[r * outDim + o] = dot(x, r * inp, weight, o * inp, inp) + (bias ? bias[o]! : 0);
  }
  return out;
}

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[ao + i]! * b[bo + i]!;
  return s;
}

function add(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}

function softmaxInPlace(row: Float32Array): void {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  const e = Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  for (let i = 0; i < row.length; i++) row[i] = e[i]! / sum;
}

function layerNorm(x: Float32Array, rows: number, w: Float32Array, b: Float32Array, eps: number): Float32Array {
  const n = x.length / rows;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i]!;
    mean /= n;
    let variance = 0;
    for (let i = 0; i < n; i++) variance += (x[r * n + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = (x[r * n + i]! - mean) * inv * w[i]! + b[i]!;
  }
  return out;
}

function rmsNorm(x: Float32Array, rows: number, w: Float32Array, eps: number): Float32Array {
  const n = x.length / rows;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    let ms = 0;
    for (let i = 0; i < n; i++) ms += x[r * n + i]! ** 2;
    const inv = 1 / Math.sqrt(ms / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = w[i]! * (x[r * n + i]! * inv);
  }
  return out;
}

interface RopeTables {
  cos: Float64Array;
  sin: Float64Array;
}

/** cos/sin per (token, frequency); inv_freq and the angles are rounded to float32 as transformers computes them. */
function ropeTables(positions: readonly number[], headDim: number, theta: number): RopeTables {
  const half = headDim / 2;
  const cos = new Float64Array(positions.length * half);
  const sin = new Float64Array(positions.length * half);
  positions.forEach((pos, t) => {
    for (let i = 0; i < half; i++) {
      const invFreq = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
      const angle = Math.fround(pos * invFreq);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  });
  return { cos, sin };
}

/** x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁]; x is [T, heads, headDim]. */
function applyRope(x: Float32Array, T: number, heads: number, headDim: number, { cos, sin }: RopeTables): void {
  const half = headDim / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const x1 = x[o + i]!;
        const x2 = x[o + half + i]!;
        const c = cos[t * half + i]!;
        const s = sin[t * half + i]!;
        x[o + i] = x1 * c - x2 * s;
        x[o + half + i] = x2 * c + x1 * s;
      }
    }
  }
}

function activate(x: Float32Array, act: Activation): Float32Array {
  const f = ACT[act];
  return x.map((v) => f(v));
}

const ACT: Record<Activation, (x: number) => number> = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  quick_gelu: (x) => x / (1 + Math.exp(-1.702 * x)),
  silu: (x) => x / (1 + Math.exp(-x)),
  relu: (x) => Math.max(0, x),
};

/** erf to ~1e-14: Taylor series near 0, the erfc continued fraction beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 60; n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let k = ax;
  for (let n = 80; n >= 1; n--) k = ax + n / 2 / k;
  const erfc = Math.exp(-ax * ax) / (Math.sqrt(Math.PI) * k);
  return Math.sign(x) * (1 - erfc);
}

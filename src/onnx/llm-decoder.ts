import { ModelError } from '../errors.js';
import type { RopeScaling, TextConfig } from '../model/vlm-config.js';
import { cachedAttention, cacheInputs } from './cached-attention.js';
import { GraphBuilder, MS_DOMAIN } from './graph-builder.js';
import {
  activation,
  DEFAULT_QUANT_BLOCK,
  linear,
  rmsNorm,
  type WeightDtype,
  WeightLoader,
  type WeightReader,
} from './layers.js';
import { mropeRotation } from './rotary.js';

export interface SegmentSpec {
  /** First decoder layer of the segment (inclusive). */
  start: number;
  /** Layer after the last one (exclusive). The segment that ends at L adds the final norm and LM head. */
  end: number;
  /** Output the last prompt token's attention row at layer end−1 (FastV). Valid for a prefill with no past. */
  lastTokenAttention: boolean;
}

/** Graph input/output names shared by the builder and the segment runner. */
export const SEGMENT_IO = {
  hidden: 'hidden_states',
  positions: 'position_ids',
  seqlensK: 'seqlens_k',
  totalLength: 'total_sequence_length',
  hiddenOut: 'hidden_states_out',
  logits: 'logits',
  kappa: 'kappa',
  lastTokenAttention: 'last_token_attention',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  /** This run's keys and values of a layer, [1, kvh, rows, hd], for the caller to append to its cache. */
  newKey: (layer: number) => `new_key.${layer}`,
  newValue: (layer: number) => `new_value.${layer}`,
} as const;

/** The text model's weight prefixes: `<text>.layers.*`, `<text>.embed_tokens`, `<text>.norm`, and the LM head. */
export interface TextKeys {
  text: string;
  lmHead: string;
}

/** Inverse frequencies of each rotary pair, scaled as HF's ROPE_INIT_FUNCTIONS do, in float32 like HF. */
export function inverseFrequencies(headDim: number, theta: number, scaling: RopeScaling = { type: 'default' }) {
  const half = headDim / 2;
  const inv = Array.from({ length: half }, (_, i) => Math.fround(1 / theta ** ((2 * i) / headDim)));
  if (scaling.type === 'linear') return inv.map((f) => Math.fround(f / scaling.factor));
  if (scaling.type !== 'llama3') return inv;
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
  const lowFreqWavelen = originalMaxPositions / lowFreqFactor;
  const highFreqWavelen = originalMaxPositions / highFreqFactor;
  return inv.map((f) => {
    const wavelen = Math.fround((2 * Math.PI) / f);
    if (wavelen > lowFreqWavelen) return Math.fround(f / factor);
    if (wavelen < highFreqWavelen) return f;
    const smooth = Math.fround((originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor));
    return Math.fround((1 - smooth) * Math.fround(f / factor) + smooth * f);
  });
}

/**
 * Rotary tables for positions 0..maxPositions−1, [maxPositions, headDim/2] each, as HF Llama/Qwen2 compute
 * them. 'dynamic' NTK scaling changes nothing below max_position_embeddings, which caps maxPositions.
 */
export function rotaryTables(
  headDim: number,
  theta: number,
  maxPositions: number,
  scaling?: RopeScaling,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  inverseFrequencies(headDim, theta, scaling).forEach((invFreq, i) => {
    for (let p = 0; p < maxPositions; p++) {
      // HF multiplies in float32; mirroring that keeps long positions within the parity tolerance.
      const angle = Math.fround(p * invFreq);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  });
  return { cos, sin };
}

/**
 * Decoder layers [start, end) of a Llama/Qwen2 model: explicit position ids (RoPE applied before the
 * attention kernel, so pruned prompts keep their original positions), attention over per-layer KV caches
 * that are inputs only (cached-attention.ts: each run returns its new rows), and κ of the last layer.
 */
export function buildDecoderSegment(
  cfg: TextConfig,
  reader: WeightReader,
  spec: SegmentSpec,
  dtype: WeightDtype,
  maxPositions: number,
  keys: TextKeys,
  quantBlock = DEFAULT_QUANT_BLOCK,
): GraphBuilder {
  if (cfg.headDim % 8 !== 0) {
    throw new ModelError(
      `head_dim ${cfg.headDim} is not a multiple of 8`,
      "ONNX Runtime's GroupQueryAttention kernel requires it; this checkpoint cannot run on it",
    );
  }
  const g = new GraphBuilder(`decoder_${spec.start}_${spec.end}`);
  const w = new WeightLoader(g, reader, dtype, quantBlock);
  const { hiddenSize: d, numHeads: nh, numKvHeads: kvh, headDim: hd } = cfg;
  const isLast = spec.end === cfg.numLayers;

  let x = g.input(SEGMENT_IO.hidden, 'float32', [1, 'seq', d]);
  const mrope = cfg.mropeSection;
  const positions = g.input(SEGMENT_IO.positions, 'int64', mrope ? [3, 1, 'seq'] : [1, 'seq']);
  const seqlensK = g.input(SEGMENT_IO.seqlensK, 'int32', [1]);
  const totalLength = g.input(SEGMENT_IO.totalLength, 'int32', []);

  const { cos, sin } = rotaryTables(hd, cfg.ropeTheta, maxPositions, cfg.ropeScaling);
  const cosCache = g.weight('rotary_cos', 'float32', [maxPositions, hd / 2], () => cos);
  const sinCache = g.weight('rotary_sin', 'float32', [maxPositions, hd / 2], () => sin);
  const rotate = mrope
    ? mropeRotation(g, positions, cosCache, sinCache, mrope, hd)
    : (t: string, heads: number) =>
        g.op(
          'RotaryEmbedding',
          [t, positions, cosCache, sinCache],
          { interleaved: 0, num_heads: heads },
          { domain: MS_DOMAIN },
        );

  const pastShape = [1, kvh, 'capacity', hd];
  const cache = cacheInputs(g, x, SEGMENT_IO.pastKey(spec.start), seqlensK, totalLength);
  for (let layer = spec.start; layer < spec.end; layer++) {
    const p = `${keys.text}.layers.${layer}`;
    const h = rmsNorm(w, x, `${p}.input_layernorm.weight`, cfg.rmsNormEps);
    const q = linear(w, h, `${p}.self_attn.q_proj`, cfg.qkvBias);
    const k = linear(w, h, `${p}.self_attn.k_proj`, cfg.qkvBias);
    const v = linear(w, h, `${p}.self_attn.v_proj`, cfg.qkvBias);
    const qRot = rotate(q, nh);
    const kRot = rotate(k, kvh);
    const past = {
      key: g.input(SEGMENT_IO.pastKey(layer), 'float32', pastShape),
      value: g.input(SEGMENT_IO.pastValue(layer), 'float32', pastShape),
    };
    const attn = `attn_${layer}`;
    const [newKey, newValue] = [SEGMENT_IO.newKey(layer), SEGMENT_IO.newValue(layer)];
    cachedAttention(g, { q: qRot, k: kRot, v }, past, cache, cfg, { attention: attn, newKey, newValue });
    g.output(newKey, newKey, 'float32', [1, kvh, 'seq', hd]);
    g.output(newValue, newValue, 'float32', [1, kvh, 'seq', hd]);
    x = g.op('Add', [x, linear(w, attn, `${p}.self_attn.o_proj`, cfg.oProjBias)]);

    const h2 = rmsNorm(w, x, `${p}.post_attention_layernorm.weight`, cfg.rmsNormEps);
    const gate = activation(g, linear(w, h2, `${p}.mlp.gate_proj`, cfg.mlpBias), cfg.act);
    const up = linear(w, h2, `${p}.mlp.up_proj`, cfg.mlpBias);
    x = g.op('Add', [x, linear(w, g.op('Mul', [gate, up]), `${p}.mlp.down_proj`, cfg.mlpBias)]);

    if (layer === spec.end - 1) {
      g.output(keyNorm(g, k, kvh, hd), SEGMENT_IO.kappa, 'float32', [1, 'seq']);
      if (spec.lastTokenAttention) {
        g.output(lastTokenAttention(g, qRot, kRot, nh, kvh, hd), SEGMENT_IO.lastTokenAttention, 'float32', [1, 'seq']);
      }
    }
  }

  if (isLast) {
    const last = g.op('Slice', [x, g.int64([-1]), g.int64([Number.MAX_SAFE_INTEGER]), g.int64([1])]);
    const normed = rmsNorm(w, last, `${keys.text}.norm.weight`, cfg.rmsNormEps);
    const head = cfg.tieWordEmbeddings || !reader.has(keys.lmHead) ? `${keys.text}.embed_tokens.weight` : keys.lmHead;
    g.output(w.matmulT(normed, head), SEGMENT_IO.logits, 'float32', [1, 1, cfg.vocabSize]);
  } else {
    g.output(x, SEGMENT_IO.hiddenOut, 'float32', [1, 'seq', d]);
  }
  return g;
}

/** κ = ‖mean over KV heads of k‖₂ per token, on the key projection before RoPE (methods.md §0). */
function keyNorm(g: GraphBuilder, k: string, kvh: number, hd: number): string {
  const perHead = g.op('Reshape', [k, g.int64([0, 0, kvh, hd])]);
  const mean = g.op('ReduceMean', [perHead, g.int64([2])], { keepdims: 0 });
  return g.op('ReduceL2', [mean, g.int64([2])], { keepdims: 0 });
}

/**
 * The last token's attention over the segment's own tokens at this layer, averaged over heads (FastV).
 * One query row against all keys: never the full attention matrix.
 */
function lastTokenAttention(g: GraphBuilder, qRot: string, kRot: string, nh: number, kvh: number, hd: number): string {
  const group = nh / kvh;
  const qLast = g.op('Slice', [qRot, g.int64([-1]), g.int64([Number.MAX_SAFE_INTEGER]), g.int64([1])]);
  const q = g.op('Reshape', [qLast, g.int64([kvh, group, hd])]);
  const kHeads = g.op('Transpose', [g.op('Reshape', [kRot, g.int64([-1, kvh, hd])])], { perm: [1, 2, 0] });
  const scores = g.op('Mul', [g.op('MatMul', [q, kHeads]), g.scalar(1 / Math.sqrt(hd))]);
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const mean = g.op('ReduceMean', [probs, g.int64([0, 1])], { keepdims: 0 });
  return g.op('Unsqueeze', [mean, g.int64([0])]);
}

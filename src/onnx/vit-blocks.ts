import type { Activation } from '../model/vlm-config.js';
import type { GraphBuilder } from './graph-builder.js';
import { activation, layerNorm, linear, type WeightLoader } from './layers.js';

/** The sizes one CLIP / SigLIP / Idefics3 encoder layer needs. */
export interface EncoderLayerDims {
  hiddenSize: number;
  numHeads: number;
  layerNormEps: number;
  act: Activation;
}

export interface EncoderLayerOutputs {
  /** [batch, tokens, hidden] the layer's output. */
  hidden: string;
  /** [batch, heads, tokens, tokens] the attention probabilities. */
  probs: string;
  /** [batch, tokens, hidden] the key projection (all heads concatenated). */
  keys: string;
}

/** The conv patch embedding `${prefix}.patch_embedding`: pixels [batch, C, H, W] → [batch, patches, hidden]. */
export function patchEmbedding(
  w: WeightLoader,
  pixels: string,
  prefix: string,
  hiddenSize: number,
  patchSize: number,
  patches: number,
): string {
  const g = w.g;
  const inputs = [pixels, w.tensor(`${prefix}.patch_embedding.weight`)];
  if (w.reader.has(`${prefix}.patch_embedding.bias`)) inputs.push(w.tensor(`${prefix}.patch_embedding.bias`));
  const conv = g.op('Conv', inputs, { kernel_shape: [patchSize, patchSize], strides: [patchSize, patchSize] });
  return g.op('Transpose', [g.op('Reshape', [conv, g.int64([0, hiddenSize, patches])])], { perm: [0, 2, 1] });
}

/** One pre-norm encoder layer (`layer_norm1`, `self_attn`, `layer_norm2`, `mlp`) with full attention. */
export function encoderLayer(w: WeightLoader, x: string, prefix: string, dims: EncoderLayerDims): EncoderLayerOutputs {
  const g = w.g;
  const { hiddenSize: d, numHeads: nh } = dims;
  const hd = d / nh;
  const h = layerNorm(w, x, `${prefix}.layer_norm1`, dims.layerNormEps);
  const q = linear(w, h, `${prefix}.self_attn.q_proj`, true);
  const k = linear(w, h, `${prefix}.self_attn.k_proj`, true);
  const v = linear(w, h, `${prefix}.self_attn.v_proj`, true);
  const heads = (t: string, perm: number[]) =>
    g.op('Transpose', [g.op('Reshape', [t, g.int64([0, 0, nh, hd])])], { perm });
  const scores = g.op('Mul', [
    g.op('MatMul', [heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1])]),
    g.scalar(1 / Math.sqrt(hd)),
  ]);
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const context = g.op('Reshape', [
    g.op('Transpose', [g.op('MatMul', [probs, heads(v, [0, 2, 1, 3])])], { perm: [0, 2, 1, 3] }),
    g.int64([0, 0, d]),
  ]);
  let out = g.op('Add', [x, linear(w, context, `${prefix}.self_attn.out_proj`, true)]);
  const h2 = layerNorm(w, out, `${prefix}.layer_norm2`, dims.layerNormEps);
  out = g.op('Add', [
    out,
    linear(w, activation(g, linear(w, h2, `${prefix}.mlp.fc1`, true), dims.act), `${prefix}.mlp.fc2`, true),
  ]);
  return { hidden: out, probs, keys: k };
}

/** Saliency of towers without a class token: attention each token receives, averaged over queries and heads. */
export function meanAttentionReceived(g: GraphBuilder, probs: string): string {
  return g.op('ReduceMean', [probs, g.int64([1, 2])], { keepdims: 0 });
}

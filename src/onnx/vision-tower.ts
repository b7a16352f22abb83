import type { ProjectorConfig, VisionConfig } from '../model/vlm-config.js';
import { activation, layerNorm, linear, type WeightLoader } from './layers.js';

/** Values of a CLIP/SigLIP tower at its feature layer, every token (class token included). */
export interface TowerOutputs {
  /** [images, tokens, hidden] hidden states leaving the feature layer. */
  hidden: string;
  /**
   * [images, tokens] patch saliency at the feature layer: CLIP, attention from the class token summed
   * over heads; SigLIP, mean attention received over all queries and heads.
   */
  saliency: string;
  /** [images, tokens, hidden] the feature layer's keys, all heads concatenated. */
  keys: string;
}

/**
 * A CLIP or SigLIP vision tower on `pixels` [images, channels, imageSize, imageSize] up to
 * `cfg.featureLayer` (later layers and post_layernorm are never computed). `prefix` names its
 * `vision_model` weights.
 */
export function visionTower(w: WeightLoader, cfg: VisionConfig, pixels: string, prefix: string): TowerOutputs {
  const g = w.g;
  const p = prefix;
  const { hiddenSize: d, numHeads: nh, gridSize } = cfg;
  const hd = d / nh;
  const n = gridSize * gridSize;

  const convInputs = [pixels, w.tensor(`${p}.embeddings.patch_embedding.weight`)];
  if (w.reader.has(`${p}.embeddings.patch_embedding.bias`))
    convInputs.push(w.tensor(`${p}.embeddings.patch_embedding.bias`));
  const patches = g.op('Conv', convInputs, {
    kernel_shape: [cfg.patchSize, cfg.patchSize],
    strides: [cfg.patchSize, cfg.patchSize],
  });
  let x = g.op('Transpose', [g.op('Reshape', [patches, g.int64([0, d, n])])], { perm: [0, 2, 1] });
  if (cfg.hasClassToken) {
    const frames = g.op('Slice', [g.op('Shape', [pixels]), g.int64([0]), g.int64([1])]);
    const clsShape = g.op('Concat', [frames, g.int64([1, d])], { axis: 0 });
    const clsToken = g.op('Expand', [
      g.op('Reshape', [w.tensor(`${p}.embeddings.class_embedding`), g.int64([1, 1, d])]),
      clsShape,
    ]);
    x = g.op('Concat', [clsToken, x], { axis: 1 });
  }
  x = g.op('Add', [x, w.tensor(`${p}.embeddings.position_embedding.weight`)]);
  if (cfg.hasClassToken) x = layerNorm(w, x, `${p}.pre_layrnorm`, cfg.layerNormEps);

  let saliency = '';
  let keys = '';
  for (let layer = 0; layer < cfg.featureLayer; layer++) {
    const lp = `${p}.encoder.layers.${layer}`;
    const h = layerNorm(w, x, `${lp}.layer_norm1`, cfg.layerNormEps);
    const q = linear(w, h, `${lp}.self_attn.q_proj`, true);
    const k = linear(w, h, `${lp}.self_attn.k_proj`, true);
    const v = linear(w, h, `${lp}.self_attn.v_proj`, true);
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
    x = g.op('Add', [x, linear(w, context, `${lp}.self_attn.out_proj`, true)]);
    const h2 = layerNorm(w, x, `${lp}.layer_norm2`, cfg.layerNormEps);
    x = g.op('Add', [
      x,
      linear(w, activation(g, linear(w, h2, `${lp}.mlp.fc1`, true), cfg.act), `${lp}.mlp.fc2`, true),
    ]);

    if (layer === cfg.featureLayer - 1) {
      saliency = cfg.hasClassToken
        ? g.op('ReduceSum', [g.op('Gather', [probs, g.int64([0], true)], { axis: 2 }), g.int64([1])], { keepdims: 0 })
        : g.op('ReduceMean', [probs, g.int64([1, 2])], { keepdims: 0 });
      keys = k;
    }
  }
  return { hidden: x, saliency, keys };
}

/** The llava-style multimodal projector: linear_1 → activation → linear_2, row by row. */
export function mlpProjector(w: WeightLoader, x: string, prefix: string, cfg: ProjectorConfig): string {
  return linear(
    w,
    activation(w.g, linear(w, x, `${prefix}.linear_1`, cfg.bias), cfg.act),
    `${prefix}.linear_2`,
    cfg.bias,
  );
}

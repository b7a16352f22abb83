import type { ProjectorConfig, VisionConfig } from '../model/vlm-config.js';
import { activation, layerNorm, linear, type WeightLoader } from './layers.js';
import { encoderLayer, meanAttentionReceived, patchEmbedding } from './vit-blocks.js';

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
  const d = cfg.hiddenSize;
  let x = patchEmbedding(w, pixels, `${p}.embeddings`, d, cfg.patchSize, cfg.gridSize * cfg.gridSize);
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
    const out = encoderLayer(w, x, `${p}.encoder.layers.${layer}`, cfg);
    x = out.hidden;
    if (layer === cfg.featureLayer - 1) {
      saliency = cfg.hasClassToken
        ? g.op('ReduceSum', [g.op('Gather', [out.probs, g.int64([0], true)], { axis: 2 }), g.int64([1])], {
            keepdims: 0,
          })
        : meanAttentionReceived(g, out.probs);
      keys = out.keys;
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

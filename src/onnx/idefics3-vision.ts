import type { Idefics3Config } from '../model/idefics3-config.js';
import { GraphBuilder } from './graph-builder.js';
import { idefics3Keys } from './idefics3-keys.js';
import { type GraphDtype, layerNorm, linear, WeightLoader, type WeightReader } from './layers.js';
import { patchGroupMean, pixelShuffle } from './patch-groups.js';
import { PROJECTOR_IO, VISION_IO } from './vision-encoder.js';
import { encoderLayer, meanAttentionReceived, patchEmbedding } from './vit-blocks.js';

/**
 * The Idefics3 vision transformer on full tiles, through the pixel shuffle: one unit is one
 * max_image_size square (a split tile, the global image or a video frame). Outputs, per unit, at LLM-token
 * granularity (tokensPerSide² tokens, each a scale×scale group of patches, row-major):
 * - `features` [units, tokens, featureWidth]: `post_layernorm` output pixel-shuffled, the connector's rows;
 * - `cls_attention` [units, tokens]: mean attention received at the last layer over all queries and heads
 *   (the tower has no CLS), averaged over the token's patches;
 * - `keys` [units, tokens, visionHidden]: the last layer's keys averaged over the token's patches.
 *
 * No pixel_attention_mask input: the processor only makes full squares, for which HF's mask is all ones,
 * its bucketised position ids are 0..patches−1 and the encoder runs unmasked. Partial tiles cannot occur.
 */
export function buildIdefics3Vision(cfg: Idefics3Config, reader: WeightReader, dtype: GraphDtype): GraphBuilder {
  const g = new GraphBuilder('vision');
  const w = new WeightLoader(g, reader, dtype);
  const p = idefics3Keys(reader).vision;
  const v = cfg.vision;
  const d = v.hiddenSize;
  const side = v.patchesPerSide;
  const tokens = cfg.tokensPerImage;

  const pixels = g.input(VISION_IO.pixels, 'float32', ['units', v.numChannels, v.imageSize, v.imageSize]);
  let x = patchEmbedding(w, pixels, `${p}.embeddings`, d, v.patchSize, side * side);
  x = g.op('Add', [x, w.tensor(`${p}.embeddings.position_embedding.weight`)]);
  let saliency = '';
  let keys = '';
  for (let layer = 0; layer < v.numLayers; layer++) {
    const out = encoderLayer(w, x, `${p}.encoder.layers.${layer}`, v);
    x = out.hidden;
    if (layer === v.numLayers - 1) {
      saliency = meanAttentionReceived(g, out.probs);
      keys = out.keys;
    }
  }
  x = layerNorm(w, x, `${p}.post_layernorm`, v.layerNormEps);

  const { scaleFactor: s, featureWidth } = cfg;
  g.output(pixelShuffle(g, x, side, s, d), VISION_IO.features, 'float32', ['units', tokens, featureWidth]);
  g.output(patchGroupMean(g, saliency, side, s, []), VISION_IO.saliency, 'float32', ['units', tokens]);
  g.output(patchGroupMean(g, keys, side, s, [d]), VISION_IO.keys, 'float32', ['units', tokens, d]);
  return g;
}

/** The connector's Linear without bias, row by row: pixel-shuffled rows [rows, featureWidth] → [rows, textHidden]. */
export function buildIdefics3Connector(cfg: Idefics3Config, reader: WeightReader, dtype: GraphDtype): GraphBuilder {
  const g = new GraphBuilder('projector');
  const w = new WeightLoader(g, reader, dtype);
  const x = g.input(PROJECTOR_IO.features, 'float32', ['rows', cfg.featureWidth]);
  const y = linear(w, x, idefics3Keys(reader).connector, false);
  g.output(y, PROJECTOR_IO.tokens, 'float32', ['rows', cfg.text.hiddenSize]);
  return g;
}

/** The vision-side graphs of an Idefics3 / SmolVLM checkpoint, as convert.ts writes them. */
export function buildIdefics3Graphs(
  cfg: Idefics3Config,
  reader: WeightReader,
  dtype: GraphDtype,
): [string, () => GraphBuilder][] {
  return [
    ['vision.onnx', () => buildIdefics3Vision(cfg, reader, dtype)],
    ['projector.onnx', () => buildIdefics3Connector(cfg, reader, dtype)],
  ];
}

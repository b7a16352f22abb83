import { ModelError } from '../errors.js';
import type { ProjectorConfig, VisionConfig } from '../model/vlm-config.js';
import { GraphBuilder } from './graph-builder.js';
import { type GraphDtype, type WeightDtype, WeightLoader, type WeightReader } from './layers.js';
import { llavaKeys } from './llava-keys.js';
import { mlpProjector, visionTower } from './vision-tower.js';

export const VISION_IO = {
  pixels: 'pixel_values',
  features: 'features',
  saliency: 'cls_attention',
  keys: 'keys',
} as const;

export const PROJECTOR_IO = { features: 'features', tokens: 'tokens' } as const;
export const EMBED_IO = { ids: 'input_ids', embeddings: 'embeddings' } as const;

/**
 * The vision tower up to the feature layer (later layers are never computed). Outputs, per frame:
 * the feature-layer hidden states after the select strategy, the patch saliency at the feature layer
 * (CLIP: attention from the class token, summed over heads; SigLIP: mean attention received over all
 * queries and heads) and that layer's keys for the patch tokens (all heads concatenated).
 */
export function buildVisionEncoder(cfg: VisionConfig, reader: WeightReader, dtype: GraphDtype): GraphBuilder {
  if (cfg.featureLayer < 1) {
    throw new ModelError(
      `vision_feature_layer selects the embeddings (hidden state ${cfg.featureLayer})`,
      'vlm-sieve needs a feature layer produced by an encoder layer',
    );
  }
  const g = new GraphBuilder('vision');
  const w = new WeightLoader(g, reader, dtype);
  const { hiddenSize: d, gridSize, imageSize, numChannels } = cfg;
  const pixels = g.input(VISION_IO.pixels, 'float32', ['frames', numChannels, imageSize, imageSize]);
  const tower = visionTower(w, cfg, pixels, llavaKeys(reader).vision);

  const tokens = gridSize * gridSize + (cfg.hasClassToken ? 1 : 0);
  // HF's 'default' strategy drops the first token whatever it is (for SigLIP, a patch); saliency and
  // keys follow the same selection so that row i of every output is the same visual token.
  const select = (t: string) =>
    cfg.selectStrategy === 'default' ? g.op('Slice', [t, g.int64([1]), g.int64([tokens]), g.int64([1])]) : t;
  const selected = cfg.selectStrategy === 'default' ? tokens - 1 : tokens;
  g.output(select(tower.saliency), VISION_IO.saliency, 'float32', ['frames', selected]);
  g.output(select(tower.keys), VISION_IO.keys, 'float32', ['frames', selected, d]);
  g.output(select(tower.hidden), VISION_IO.features, 'float32', ['frames', selected, d]);
  return g;
}

/** The multimodal projector: linear_1 → activation → linear_2, on any number of feature rows. */
export function buildProjector(cfg: ProjectorConfig, reader: WeightReader, dtype: GraphDtype): GraphBuilder {
  const g = new GraphBuilder('projector');
  const w = new WeightLoader(g, reader, dtype);
  const x = g.input(PROJECTOR_IO.features, 'float32', ['rows', cfg.inputSize]);
  const y = mlpProjector(w, x, llavaKeys(reader).projector, cfg);
  g.output(y, PROJECTOR_IO.tokens, 'float32', ['rows', cfg.outputSize]);
  return g;
}

/** Token embeddings: ids [1, seq] → [1, seq, hidden]; `textPrefix` holds `embed_tokens`. */
export function buildEmbedding(
  reader: WeightReader,
  hiddenSize: number,
  dtype: WeightDtype,
  textPrefix: string,
): GraphBuilder {
  const g = new GraphBuilder('embed');
  const w = new WeightLoader(g, reader, dtype);
  const ids = g.input(EMBED_IO.ids, 'int64', [1, 'seq']);
  g.output(
    g.op('Gather', [w.tensor(`${textPrefix}.embed_tokens.weight`), ids], { axis: 0 }),
    EMBED_IO.embeddings,
    'float32',
    [1, 'seq', hiddenSize],
  );
  return g;
}

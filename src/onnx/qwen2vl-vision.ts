import type { Qwen2VlConfig, Qwen2VlVisionConfig } from '../model/qwen2vl-config.js';
import { GraphBuilder } from './graph-builder.js';
import { activation, type GraphDtype, layerNorm, linear, WeightLoader, type WeightReader } from './layers.js';
import { qwen2VlKeys } from './qwen2vl-keys.js';
import { rotateHalf } from './rotary.js';
import { PROJECTOR_IO, VISION_IO } from './vision-encoder.js';

/** The vision graph's inputs; its outputs are VISION_IO's features, cls_attention and keys. */
export const QWEN2VL_VISION_IO = {
  /** [units, patches, C·T·P·P]: one unit is one temporal slice, rows in the processor's flattening order. */
  pixels: VISION_IO.pixels,
  /** [patches, 2] int64: each patch's (row, col) in the unit's patch grid, for the 2-D rotary embedding. */
  patchPositions: 'patch_positions',
} as const;

/** Both norms in the ViT blocks and the merger's ln_q are built with eps 1e-6 in transformers. */
const VISION_LN_EPS = 1e-6;
const VISION_ROPE_THETA = 10000;

/**
 * The vision-side graphs of a Qwen2-VL checkpoint, for convert.ts: the ViT with its per-token outputs,
 * the merger as a row-wise projector, and the token embeddings.
 */
export function buildQwen2VlGraphs(
  config: Qwen2VlConfig,
  reader: WeightReader,
  dtype: GraphDtype,
): [string, () => GraphBuilder][] {
  return [
    ['vision.onnx', () => buildQwen2VlVision(config.vision, reader, dtype)],
    ['projector.onnx', () => buildQwen2VlMerger(config.vision, reader, dtype)],
  ];
}

/** Patches merged into one LLM token (4 for a 2×2 merge). */
export function patchesPerToken(cfg: Qwen2VlVisionConfig): number {
  return cfg.spatialMergeSize ** 2;
}

/**
 * Every ViT block; each unit (temporal slice) attends only within itself, which is HF's block-diagonal
 * cu_seqlens mask. Outputs per unit at LLM-token granularity, a token being a merge group of patches:
 * `features` [units, tokens, groupPatches·embed] (the merger's input rows, before ln_q), `cls_attention`
 * [units, tokens] (mean attention received over queries and heads in the last block, averaged over the
 * group) and `keys` [units, tokens, embed] (the last block's keys before the rotary embedding, averaged
 * over the group).
 */
export function buildQwen2VlVision(cfg: Qwen2VlVisionConfig, reader: WeightReader, dtype: GraphDtype): GraphBuilder {
  const g = new GraphBuilder('vision');
  const w = new WeightLoader(g, reader, dtype);
  const p = qwen2VlKeys(reader).vision;
  const { embedDim: d, numHeads: nh } = cfg;
  const hd = d / nh;
  const group = patchesPerToken(cfg);
  const patchDim = cfg.inChannels * cfg.temporalPatchSize * cfg.patchSize ** 2;

  const pixels = g.input(QWEN2VL_VISION_IO.pixels, 'float32', ['units', 'patches', patchDim]);
  const positions = g.input(QWEN2VL_VISION_IO.patchPositions, 'int64', ['patches', 2]);

  // Conv3d with kernel = stride = (T, P, P) on one flattened patch is a dot product with the flattened kernel.
  const kernel = g.op('Reshape', [w.tensor(`${p}.patch_embed.proj.weight`), g.int64([d, patchDim])]);
  let x = g.op('MatMul', [pixels, g.op('Transpose', [kernel], { perm: [1, 0] })]);

  const { cos, sin } = visionRotary(g, positions, hd);
  const rotate = (t: string) => g.op('Add', [g.op('Mul', [t, cos]), g.op('Mul', [rotateHalf(g, t, hd), sin])]);

  for (let block = 0; block < cfg.depth; block++) {
    const bp = `${p}.blocks.${block}`;
    const h = layerNorm(w, x, `${bp}.norm1`, VISION_LN_EPS);
    const qkv = g.op('Reshape', [linear(w, h, `${bp}.attn.qkv`, true), g.int64([0, 0, 3, nh, hd])]);
    const [q, k, v] = g
      .opN('Split', [qkv], { axis: 2, num_outputs: 3 }, 3)
      .map((t) => g.op('Squeeze', [t, g.int64([2])]));
    const scores = g.op('Mul', [
      g.op('MatMul', [
        g.op('Transpose', [rotate(q)], { perm: [0, 2, 1, 3] }),
        g.op('Transpose', [rotate(k)], { perm: [0, 2, 3, 1] }),
      ]),
      g.scalar(1 / Math.sqrt(hd)),
    ]);
    const probs = g.op('Softmax', [scores], { axis: -1 });
    const context = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [probs, g.op('Transpose', [v], { perm: [0, 2, 1, 3] })])], {
        perm: [0, 2, 1, 3],
      }),
      g.int64([0, 0, d]),
    ]);
    x = g.op('Add', [x, linear(w, context, `${bp}.attn.proj`, true)]);
    const h2 = layerNorm(w, x, `${bp}.norm2`, VISION_LN_EPS);
    x = g.op('Add', [
      x,
      linear(w, activation(g, linear(w, h2, `${bp}.mlp.fc1`, true), cfg.act), `${bp}.mlp.fc2`, true),
    ]);

    if (block === cfg.depth - 1) {
      const received = g.op('ReduceMean', [probs, g.int64([1, 2])], { keepdims: 0 });
      const saliency = g.op('Reshape', [received, g.int64([0, -1, group])]);
      g.output(g.op('ReduceMean', [saliency, g.int64([2])], { keepdims: 0 }), VISION_IO.saliency, 'float32', [
        'units',
        'tokens',
      ]);
      const groupedKeys = g.op('Reshape', [k, g.int64([0, -1, group, d])]);
      g.output(g.op('ReduceMean', [groupedKeys, g.int64([2])], { keepdims: 0 }), VISION_IO.keys, 'float32', [
        'units',
        'tokens',
        d,
      ]);
    }
  }
  // The processor orders each merge group's patches consecutively, so a token's row is a plain reshape.
  g.output(g.op('Reshape', [x, g.int64([0, -1, group * d])]), VISION_IO.features, 'float32', [
    'units',
    'tokens',
    group * d,
  ]);
  return g;
}

/**
 * cos and sin [1, patches, 1, headDim] of HF's VisionRotaryEmbedding(headDim/2): the first half of the
 * frequencies turns with the patch row, the second with the column, and the table repeats once
 * (rotate_half layout).
 */
function visionRotary(g: GraphBuilder, positions: string, hd: number): { cos: string; sin: string } {
  const dim = hd / 2;
  // inv_freq as torch computes it in float32: 1 / theta^(2i/dim).
  const invFreq = Float32Array.from({ length: dim / 2 }, (_, i) =>
    Math.fround(1 / Math.fround(VISION_ROPE_THETA ** Math.fround((2 * i) / dim))),
  );
  const inv = g.weight('vision_rotary_inv_freq', 'float32', [dim / 2], () => invFreq);
  const angles = g.op('Mul', [g.op('Unsqueeze', [g.op('Cast', [positions], { to: 1 }), g.int64([2])]), inv]);
  const half = g.op('Reshape', [angles, g.int64([1, -1, 1, dim])]);
  const full = g.op('Concat', [half, half], { axis: -1 });
  return { cos: g.op('Cos', [full]), sin: g.op('Sin', [full]) };
}

/**
 * The PatchMerger as a row-wise projector: rows [rows, groupPatches·embed] → ln_q on each patch →
 * Linear → GELU → Linear → [rows, textHidden]. Rows pruned before it are never computed.
 */
export function buildQwen2VlMerger(cfg: Qwen2VlVisionConfig, reader: WeightReader, dtype: GraphDtype): GraphBuilder {
  const g = new GraphBuilder('projector');
  const w = new WeightLoader(g, reader, dtype);
  const p = `${qwen2VlKeys(reader).vision}.merger`;
  const group = patchesPerToken(cfg);
  const rows = g.input(PROJECTOR_IO.features, 'float32', ['rows', group * cfg.embedDim]);
  const perPatch = g.op('Reshape', [rows, g.int64([0, group, cfg.embedDim])]);
  const normed = g.op('Reshape', [
    layerNorm(w, perPatch, `${p}.ln_q`, VISION_LN_EPS),
    g.int64([0, group * cfg.embedDim]),
  ]);
  const hidden = activation(g, linear(w, normed, `${p}.mlp.0`, true), 'gelu');
  g.output(linear(w, hidden, `${p}.mlp.2`, true), PROJECTOR_IO.tokens, 'float32', ['rows', cfg.outHiddenSize]);
  return g;
}

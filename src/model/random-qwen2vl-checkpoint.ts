import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addedToken,
  CLIP_MEAN,
  CLIP_STD,
  RANDOM_WORDS,
  type TensorPlan,
  TORCH_DTYPE,
  tokenizerJson,
  writeTensors,
} from './random-checkpoint.js';
import type { FloatDtype } from './safetensors-writer.js';

export interface RandomQwen2VlSpec {
  vision: {
    depth: number;
    embedDim: number;
    numHeads: number;
    /** MLP width / embed_dim; default 4. */
    mlpRatio?: number;
    patchSize: number;
    /** Default 2. */
    temporalPatchSize?: number;
    /** Default 2. */
    spatialMergeSize?: number;
  };
  text: {
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    numKvHeads: number;
    vocabSize: number;
    /** Rotary pairs per (t, h, w) axis: adds up to head_dim / 2. */
    mropeSection: [number, number, number];
    ropeTheta?: number;
    tieWordEmbeddings?: boolean;
    /** HF `max_position_embeddings`; default 32768. */
    maxPositions?: number;
  };
  /** preprocessor_config.json's pixel bounds; defaults Qwen2VLImageProcessor's (56², 28²·1280). */
  minPixels?: number;
  maxPixels?: number;
  seed: number;
  dtype?: FloatDtype;
  shards?: number;
}

/** Qwen2's special tokens as Qwen2-VL's tokenizer has them (there at ids 151643…, here at 0…). */
const QWEN_SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
] as const;
const ID = Object.fromEntries(QWEN_SPECIAL_TOKENS.map((t, i) => [t, i])) as Record<
  (typeof QWEN_SPECIAL_TOKENS)[number],
  number
>;

/** Qwen2-VL-Instruct's chat_template.json (transformers' Qwen2VLProcessor), verbatim. */
export const QWEN2VL_CHAT_TEMPLATE =
  '{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}' +
  "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}" +
  '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}' +
  "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n" +
  "{% else %}{% for content in message['content'] %}" +
  "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}" +
  '{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: ' +
  '{% endif %}<|vision_start|><|image_pad|><|vision_end|>' +
  "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}" +
  '{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>' +
  "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}" +
  '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';

/**
 * Writes a complete Hugging Face `qwen2_vl` checkpoint with seeded random weights, in the key layout
 * transformers 4.46 saves (`visual.*`, `model.*`, `lm_head`), with a WordLevel tokenizer whose special
 * tokens and chat template are Qwen2-VL-Instruct's.
 */
export function writeRandomQwen2VlCheckpoint(dir: string, spec: RandomQwen2VlSpec): void {
  const words = [...QWEN_SPECIAL_TOKENS, '<unk>', ...RANDOM_WORDS, 'You', 'helpful'].slice(0, spec.text.vocabSize);
  if (words.length < QWEN_SPECIAL_TOKENS.length + 1)
    throw new Error(`vocabSize must be at least ${QWEN_SPECIAL_TOKENS.length + 1}`);
  mkdirSync(dir, { recursive: true });
  const json = (name: string, value: unknown) => writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
  const v = spec.vision;
  const T = v.temporalPatchSize ?? 2;
  const merge = v.spatialMergeSize ?? 2;

  json('config.json', hfConfig(spec, T, merge));
  json('generation_config.json', {
    bos_token_id: ID['<|endoftext|>'],
    eos_token_id: [ID['<|im_end|>'], ID['<|endoftext|>']],
    pad_token_id: ID['<|endoftext|>'],
    transformers_version: '4.46.1',
  });
  json('tokenizer.json', tokenizerJson(QWEN_SPECIAL_TOKENS, words, { unk: '<unk>' }));
  json('tokenizer_config.json', {
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(QWEN_SPECIAL_TOKENS.map((t, id) => [String(id), addedToken(t)])),
    additional_special_tokens: QWEN_SPECIAL_TOKENS.slice(1),
    bos_token: null,
    chat_template: QWEN2VL_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 32768,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  });
  json('chat_template.json', { chat_template: QWEN2VL_CHAT_TEMPLATE });
  json('preprocessor_config.json', {
    min_pixels: spec.minPixels ?? 56 * 56,
    max_pixels: spec.maxPixels ?? 28 * 28 * 1280,
    patch_size: v.patchSize,
    temporal_patch_size: T,
    merge_size: merge,
    image_mean: CLIP_MEAN,
    image_std: CLIP_STD,
    image_processor_type: 'Qwen2VLImageProcessor',
    processor_class: 'Qwen2VLProcessor',
  });
  writeTensors(dir, tensorPlan(spec, T, merge), spec);
}

function hfConfig(spec: RandomQwen2VlSpec, temporalPatchSize: number, merge: number): Record<string, unknown> {
  const { vision: v, text: t } = spec;
  return {
    architectures: ['Qwen2VLForConditionalGeneration'],
    attention_dropout: 0,
    bos_token_id: ID['<|endoftext|>'],
    eos_token_id: ID['<|im_end|>'],
    vision_start_token_id: ID['<|vision_start|>'],
    vision_end_token_id: ID['<|vision_end|>'],
    vision_token_id: ID['<|vision_pad|>'],
    image_token_id: ID['<|image_pad|>'],
    video_token_id: ID['<|video_pad|>'],
    hidden_act: 'silu',
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    max_position_embeddings: t.maxPositions ?? 32768,
    max_window_layers: t.numLayers,
    model_type: 'qwen2_vl',
    num_attention_heads: t.numHeads,
    num_hidden_layers: t.numLayers,
    num_key_value_heads: t.numKvHeads,
    rms_norm_eps: 1e-6,
    rope_theta: t.ropeTheta ?? 1e6,
    sliding_window: 32768,
    tie_word_embeddings: t.tieWordEmbeddings ?? false,
    torch_dtype: TORCH_DTYPE[spec.dtype ?? 'F32'],
    transformers_version: '4.46.1',
    use_cache: true,
    use_sliding_window: false,
    vision_config: {
      depth: v.depth,
      embed_dim: v.embedDim,
      mlp_ratio: v.mlpRatio ?? 4,
      num_heads: v.numHeads,
      in_chans: 3,
      hidden_size: t.hiddenSize,
      patch_size: v.patchSize,
      spatial_merge_size: merge,
      spatial_patch_size: v.patchSize,
      temporal_patch_size: temporalPatchSize,
    },
    rope_scaling: { type: 'mrope', mrope_section: t.mropeSection },
    vocab_size: t.vocabSize,
  };
}

function tensorPlan(spec: RandomQwen2VlSpec, T: number, merge: number): TensorPlan[] {
  const plan: TensorPlan[] = [];
  const linear = (name: string, out: number, inp: number, bias: boolean) => {
    plan.push({ name: `${name}.weight`, shape: [out, inp], init: { kind: 'linear', fanIn: inp } });
    if (bias) plan.push({ name: `${name}.bias`, shape: [out], init: { kind: 'small' } });
  };
  const layerNorm = (name: string, size: number) => {
    plan.push({ name: `${name}.weight`, shape: [size], init: { kind: 'norm' } });
    plan.push({ name: `${name}.bias`, shape: [size], init: { kind: 'small' } });
  };

  const v = spec.vision;
  const E = v.embedDim;
  const mlp = Math.floor(E * (v.mlpRatio ?? 4));
  plan.push({
    name: 'visual.patch_embed.proj.weight',
    shape: [E, 3, T, v.patchSize, v.patchSize],
    init: { kind: 'linear', fanIn: 3 * T * v.patchSize ** 2 },
  });
  for (let i = 0; i < v.depth; i++) {
    const p = `visual.blocks.${i}`;
    layerNorm(`${p}.norm1`, E);
    layerNorm(`${p}.norm2`, E);
    linear(`${p}.attn.qkv`, 3 * E, E, true);
    linear(`${p}.attn.proj`, E, E, true);
    linear(`${p}.mlp.fc1`, mlp, E, true);
    linear(`${p}.mlp.fc2`, E, mlp, true);
  }
  const merged = E * merge ** 2;
  const t = spec.text;
  layerNorm('visual.merger.ln_q', E);
  linear('visual.merger.mlp.0', merged, merged, true);
  linear('visual.merger.mlp.2', t.hiddenSize, merged, true);

  const D = t.hiddenSize;
  const headDim = D / t.numHeads;
  plan.push({ name: 'model.embed_tokens.weight', shape: [t.vocabSize, D], init: { kind: 'unit' } });
  for (let i = 0; i < t.numLayers; i++) {
    const p = `model.layers.${i}`;
    linear(`${p}.self_attn.q_proj`, t.numHeads * headDim, D, true);
    linear(`${p}.self_attn.k_proj`, t.numKvHeads * headDim, D, true);
    linear(`${p}.self_attn.v_proj`, t.numKvHeads * headDim, D, true);
    linear(`${p}.self_attn.o_proj`, D, t.numHeads * headDim, false);
    linear(`${p}.mlp.gate_proj`, t.intermediateSize, D, false);
    linear(`${p}.mlp.up_proj`, t.intermediateSize, D, false);
    linear(`${p}.mlp.down_proj`, D, t.intermediateSize, false);
    plan.push({ name: `${p}.input_layernorm.weight`, shape: [D], init: { kind: 'norm' } });
    plan.push({ name: `${p}.post_attention_layernorm.weight`, shape: [D], init: { kind: 'norm' } });
  }
  plan.push({ name: 'model.norm.weight', shape: [D], init: { kind: 'norm' } });
  if (!(t.tieWordEmbeddings ?? false)) linear('lm_head', t.vocabSize, D, false);
  return plan;
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FloatDtype, type TensorToWrite, writeSafetensors } from './safetensors-writer.js';
import type { TextFamily, VisionFamily } from './vlm-config.js';

export interface RandomCheckpointSpec {
  vision: {
    family: VisionFamily;
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    imageSize: number;
    patchSize: number;
    /** HF `vision_feature_layer` (negative counts from the end); default −2. */
    featureLayer?: number;
    /** Default: 'default' for CLIP (drops CLS), 'full' for SigLIP. */
    selectStrategy?: 'default' | 'full';
  };
  text: {
    family: TextFamily;
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    numKvHeads: number;
    vocabSize: number;
    ropeTheta?: number;
    tieWordEmbeddings?: boolean;
    /** Llama only: bias on q/k/v/o, and on the MLP projections. */
    attentionBias?: boolean;
    mlpBias?: boolean;
    /** HF `max_position_embeddings`; default 4096. */
    maxPositions?: number;
  };
  /** HF `projector_hidden_act`; default 'gelu'. */
  projectorAct?: string;
  seed: number;
  dtype?: FloatDtype;
  /** Number of weight files; more than 1 writes model-0000i-of-0000n.safetensors + index. */
  shards?: number;
}

/** Tokens of the generated tokenizer: ids 0..4 are special, then a small word vocabulary. */
const RANDOM_SPECIAL_TOKENS = ['<pad>', '<s>', '</s>', '<unk>', '<image>'] as const;
const IMAGE_TOKEN_ID = 4;
/** The word vocabulary of the generated tokenizers (questions about the test clips tokenize without `<unk>`). */
/** Qwen2-0.5B's decoder shape (vocabulary cut to 4,096: random weights time the same, load faster). */
export const QWEN2_0_5B_TEXT = {
  family: 'qwen2',
  hiddenSize: 896,
  numLayers: 24,
  numHeads: 14,
  numKvHeads: 2,
  intermediateSize: 4864,
  vocabSize: 4096,
} as const satisfies RandomCheckpointSpec['text'];

export const RANDOM_WORDS = [
  'system',
  'user',
  'assistant',
  'frame',
  ':',
  '?',
  '.',
  ',',
  '!',
  "'",
  '-',
  ...Array.from({ length: 64 }, (_, i) => String(i)),
  'yes',
  'no',
  'what',
  'which',
  'how',
  'many',
  'is',
  'are',
  'there',
  'the',
  'a',
  'an',
  'of',
  'in',
  'on',
  'at',
  'colour',
  'color',
  'shape',
  'count',
  'moving',
  'static',
  'first',
  'last',
  'left',
  'right',
  'top',
  'bottom',
  'red',
  'green',
  'blue',
  'yellow',
  'white',
  'black',
  'circle',
  'square',
  'triangle',
  'star',
  'up',
  'down',
  'before',
  'after',
  'and',
  'or',
  'not',
  'one',
  'two',
  'three',
  'four',
  'five',
];

/**
 * The llava-like template the random checkpoints carry: each image item becomes `frame <index> <image>`,
 * then the text; the generation prompt is `assistant:`.
 */
const CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ message['role'] }}:" +
  "{% for item in message['content'] %}{% if item['type'] == 'image' %} frame {{ item['index'] }} <image>" +
  "{% elif item['type'] == 'text' %} {{ item['text'] }}{% endif %}{% endfor %}{{ '\\n' }}{% endfor %}" +
  '{% if add_generation_prompt %}assistant:{% endif %}';

export const TORCH_DTYPE: Record<FloatDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/**
 * Writes a complete HF llava checkpoint with seeded random weights, in the key layout transformers
 * 4.46 saves. Each tensor has its own stream seeded from (seed, name), so values do not depend on
 * dtype, sharding or order, and only one chunk of one tensor is in memory at a time.
 */
export function writeRandomCheckpoint(dir: string, spec: RandomCheckpointSpec): void {
  const vocabWords = [...RANDOM_SPECIAL_TOKENS, ...RANDOM_WORDS].slice(0, spec.text.vocabSize);
  if (vocabWords.length < RANDOM_SPECIAL_TOKENS.length)
    throw new Error(`vocabSize must be at least ${RANDOM_SPECIAL_TOKENS.length}`);
  mkdirSync(dir, { recursive: true });
  const json = (name: string, value: unknown) => writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);

  json('config.json', hfConfig(spec));
  json('generation_config.json', {
    _from_model_config: true,
    bos_token_id: 1,
    eos_token_id: 2,
    transformers_version: '4.46.1',
  });
  json('tokenizer.json', tokenizerJson(RANDOM_SPECIAL_TOKENS, vocabWords, { unk: '<unk>', bos: '<s>' }));
  json('tokenizer_config.json', {
    added_tokens_decoder: Object.fromEntries(RANDOM_SPECIAL_TOKENS.map((t, id) => [String(id), addedToken(t)])),
    bos_token: '<s>',
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '</s>',
    model_max_length: 4096,
    pad_token: '<pad>',
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: '<unk>',
  });
  json('preprocessor_config.json', preprocessorConfig(spec));
  writeTensors(dir, tensorPlan(spec), spec);
}

function hfConfig(spec: RandomCheckpointSpec): Record<string, unknown> {
  const { vision: v, text: t } = spec;
  const clip = v.family === 'clip';
  const strategy = v.selectStrategy ?? (clip ? 'default' : 'full');
  const grid = Math.floor(v.imageSize / v.patchSize);
  const visionConfig = {
    hidden_act: clip ? 'quick_gelu' : 'gelu_pytorch_tanh',
    hidden_size: v.hiddenSize,
    image_size: v.imageSize,
    intermediate_size: v.intermediateSize,
    layer_norm_eps: clip ? 1e-5 : 1e-6,
    model_type: clip ? 'clip_vision_model' : 'siglip_vision_model',
    num_attention_heads: v.numHeads,
    num_channels: 3,
    num_hidden_layers: v.numLayers,
    patch_size: v.patchSize,
    ...(clip ? { projection_dim: v.hiddenSize } : {}),
  };
  const common = {
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    max_position_embeddings: t.maxPositions ?? 4096,
    num_attention_heads: t.numHeads,
    num_hidden_layers: t.numLayers,
    num_key_value_heads: t.numKvHeads,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: t.ropeTheta ?? 10000,
    tie_word_embeddings: t.tieWordEmbeddings ?? false,
    vocab_size: t.vocabSize,
  };
  const textConfig =
    t.family === 'llama'
      ? {
          ...common,
          attention_bias: t.attentionBias ?? false,
          head_dim: t.hiddenSize / t.numHeads,
          mlp_bias: t.mlpBias ?? false,
          model_type: 'llama',
        }
      : {
          ...common,
          max_window_layers: t.numLayers,
          model_type: 'qwen2',
          sliding_window: null,
          use_sliding_window: false,
        };
  return {
    architectures: ['LlavaForConditionalGeneration'],
    ignore_index: -100,
    image_seq_length: grid * grid + (clip ? 1 : 0) - (strategy === 'default' ? 1 : 0),
    image_token_index: IMAGE_TOKEN_ID,
    model_type: 'llava',
    projector_hidden_act: spec.projectorAct ?? 'gelu',
    text_config: textConfig,
    torch_dtype: TORCH_DTYPE[spec.dtype ?? 'F32'],
    transformers_version: '4.46.1',
    vision_config: visionConfig,
    vision_feature_layer: v.featureLayer ?? -2,
    vision_feature_select_strategy: strategy,
  };
}

export function addedToken(content: string) {
  return { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
}

/**
 * A WordLevel tokenizer.json: `specials` are added tokens with ids 0.., `words` (which start with them) the
 * vocabulary; with `bos`, the post-processor puts it in front (as Llama's does).
 */
export function tokenizerJson(
  specials: readonly string[],
  words: readonly string[],
  { unk, bos }: { unk: string; bos?: string },
): Record<string, unknown> {
  const bosId = bos === undefined ? -1 : words.indexOf(bos);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t, id) => ({ id, ...addedToken(t) })),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor:
      bos === undefined
        ? null
        : {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bos, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { Sequence: { id: 'B', type_id: 1 } },
            ],
            special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
          },
    decoder: null,
    model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: unk },
  };
}

function preprocessorConfig(spec: RandomCheckpointSpec): Record<string, unknown> {
  const s = spec.vision.imageSize;
  const common = {
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    processor_class: 'LlavaProcessor',
    resample: 3,
    rescale_factor: 1 / 255,
  };
  return spec.vision.family === 'clip'
    ? {
        ...common,
        crop_size: { height: s, width: s },
        do_center_crop: true,
        image_mean: CLIP_MEAN,
        image_processor_type: 'CLIPImageProcessor',
        image_std: CLIP_STD,
        size: { shortest_edge: s },
      }
    : {
        ...common,
        image_mean: [0.5, 0.5, 0.5],
        image_processor_type: 'SiglipImageProcessor',
        image_std: [0.5, 0.5, 0.5],
        size: { height: s, width: s },
      };
}

/**
 * How a tensor is filled, chosen so activations keep their scale through the layers (and outputs are
 * far from flat, so parity tests can fail): 'linear' has std 1/√fan_in, 'unit' std ≈ 0.58 (U(−1, 1)),
 * 'norm' is 1 ± 0.1, 'small' ± 0.1.
 */
export type Init = { kind: 'linear'; fanIn: number } | { kind: 'unit' | 'norm' | 'small' };

export interface TensorPlan {
  name: string;
  shape: number[];
  init: Init;
}

/** Collects tensor plans; `linear` and `layerNorm` add a module's weight and bias. */
export class TensorPlanner {
  readonly plan: TensorPlan[] = [];

  add(name: string, shape: number[], init: Init): void {
    this.plan.push({ name, shape, init });
  }

  linear(name: string, out: number, inp: number, bias: boolean): void {
    this.add(`${name}.weight`, [out, inp], { kind: 'linear', fanIn: inp });
    if (bias) this.add(`${name}.bias`, [out], { kind: 'small' });
  }

  layerNorm(name: string, size: number): void {
    this.add(`${name}.weight`, [size], { kind: 'norm' });
    this.add(`${name}.bias`, [size], { kind: 'small' });
  }

  /** CLIP / SigLIP encoder layers `${prefix}.{0..layers−1}`. */
  vitLayers(prefix: string, hidden: number, intermediate: number, layers: number): void {
    for (let i = 0; i < layers; i++) {
      const p = `${prefix}.${i}`;
      for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj'])
        this.linear(`${p}.self_attn.${proj}`, hidden, hidden, true);
      this.layerNorm(`${p}.layer_norm1`, hidden);
      this.layerNorm(`${p}.layer_norm2`, hidden);
      this.linear(`${p}.mlp.fc1`, intermediate, hidden, true);
      this.linear(`${p}.mlp.fc2`, hidden, intermediate, true);
    }
  }

  /** A Llama / Qwen2 model under `prefix` (embed_tokens, layers, norm), without the LM head. */
  textModel(prefix: string, t: RandomCheckpointSpec['text']): void {
    const D = t.hiddenSize;
    const headDim = D / t.numHeads;
    const llama = t.family === 'llama';
    const qkvBias = !llama || (t.attentionBias ?? false);
    const mlpBias = llama && (t.mlpBias ?? false);
    this.add(`${prefix}.embed_tokens.weight`, [t.vocabSize, D], { kind: 'unit' });
    for (let i = 0; i < t.numLayers; i++) {
      const p = `${prefix}.layers.${i}`;
      this.linear(`${p}.self_attn.q_proj`, t.numHeads * headDim, D, qkvBias);
      this.linear(`${p}.self_attn.k_proj`, t.numKvHeads * headDim, D, qkvBias);
      this.linear(`${p}.self_attn.v_proj`, t.numKvHeads * headDim, D, qkvBias);
      this.linear(`${p}.self_attn.o_proj`, D, t.numHeads * headDim, llama && (t.attentionBias ?? false));
      this.linear(`${p}.mlp.gate_proj`, t.intermediateSize, D, mlpBias);
      this.linear(`${p}.mlp.up_proj`, t.intermediateSize, D, mlpBias);
      this.linear(`${p}.mlp.down_proj`, D, t.intermediateSize, mlpBias);
      this.add(`${p}.input_layernorm.weight`, [D], { kind: 'norm' });
      this.add(`${p}.post_attention_layernorm.weight`, [D], { kind: 'norm' });
    }
    this.add(`${prefix}.norm.weight`, [D], { kind: 'norm' });
  }
}

function tensorPlan(spec: RandomCheckpointSpec): TensorPlan[] {
  const planner = new TensorPlanner();
  const v = spec.vision;
  const vm = 'vision_tower.vision_model';
  const clip = v.family === 'clip';
  const grid = Math.floor(v.imageSize / v.patchSize);
  const H = v.hiddenSize;
  planner.add(`${vm}.embeddings.patch_embedding.weight`, [H, 3, v.patchSize, v.patchSize], {
    kind: 'linear',
    fanIn: 3 * v.patchSize ** 2,
  });
  if (clip) planner.add(`${vm}.embeddings.class_embedding`, [H], { kind: 'unit' });
  else planner.add(`${vm}.embeddings.patch_embedding.bias`, [H], { kind: 'small' });
  planner.add(`${vm}.embeddings.position_embedding.weight`, [grid * grid + (clip ? 1 : 0), H], { kind: 'unit' });
  if (clip) planner.layerNorm(`${vm}.pre_layrnorm`, H);
  planner.vitLayers(`${vm}.encoder.layers`, H, v.intermediateSize, v.numLayers);
  planner.layerNorm(`${vm}.post_layernorm`, H);
  if (!clip) {
    // SigLIP's attention-pooling head: unused by llava, but transformers saves it.
    planner.add(`${vm}.head.probe`, [1, 1, H], { kind: 'unit' });
    planner.add(`${vm}.head.attention.in_proj_weight`, [3 * H, H], { kind: 'linear', fanIn: H });
    planner.add(`${vm}.head.attention.in_proj_bias`, [3 * H], { kind: 'small' });
    planner.linear(`${vm}.head.attention.out_proj`, H, H, true);
    planner.layerNorm(`${vm}.head.layernorm`, H);
    planner.linear(`${vm}.head.mlp.fc1`, v.intermediateSize, H, true);
    planner.linear(`${vm}.head.mlp.fc2`, H, v.intermediateSize, true);
  }

  const t = spec.text;
  planner.linear('multi_modal_projector.linear_1', t.hiddenSize, H, true);
  planner.linear('multi_modal_projector.linear_2', t.hiddenSize, t.hiddenSize, true);
  planner.textModel('language_model.model', t);
  // save_pretrained drops a tied lm_head.
  if (!(t.tieWordEmbeddings ?? false)) planner.linear('language_model.lm_head', t.vocabSize, t.hiddenSize, false);
  return planner.plan;
}

/** Writes the planned tensors with seeded random values: model.safetensors, or `shards` files and an index. */
export function writeTensors(
  dir: string,
  tensors: readonly TensorPlan[],
  spec: { seed: number; dtype?: FloatDtype; shards?: number },
): void {
  const dtype = spec.dtype ?? 'F32';
  const plan = [...tensors].sort((a, b) => (a.name < b.name ? -1 : 1));
  const toWrite = (p: TensorPlan): TensorToWrite => ({
    name: p.name,
    shape: p.shape,
    dtype,
    data: () => randomChunks(spec.seed, p),
  });
  const shards = Math.max(1, Math.min(spec.shards ?? 1, plan.length));
  if (shards === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), plan.map(toWrite));
    return;
  }
  // Contiguous groups of about equal size, as save_pretrained's max_shard_size splitting makes.
  const bytes = (p: TensorPlan) => p.shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2);
  const total = plan.reduce((sum, p) => sum + bytes(p), 0);
  const groups: TensorPlan[][] = Array.from({ length: shards }, () => []);
  let g = 0;
  let filled = 0;
  plan.forEach((p, i) => {
    groups[g].push(p);
    filled += bytes(p);
    const later = shards - 1 - g;
    // Move on at the byte target, or when exactly one tensor is left per remaining shard.
    if (later > 0 && (filled >= (total * (g + 1)) / shards || plan.length - i - 1 === later)) g++;
  });
  const weightMap: Record<string, string> = {};
  groups.forEach((group, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    writeSafetensors(join(dir, file), group.map(toWrite));
    for (const p of group) weightMap[p.name] = file;
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  writeFileSync(join(dir, 'model.safetensors.index.json'), `${JSON.stringify(index, null, 2)}\n`);
}

const CHUNK = 1 << 20;

/** sfc32, seeded from (seed, tensor name): fast, and good enough for weights. */
function* randomChunks(seed: number, p: TensorPlan): Generator<Float32Array> {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < p.name.length; i++) h = Math.imul(h ^ p.name.charCodeAt(i), 0x01000193);
  let a = h ^ 0x9e3779b9;
  let b = Math.imul(h, 0x85ebca6b) ^ seed;
  let c = Math.imul(h ^ (h >>> 16), 0xc2b2ae35);
  let d = 1;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t;
  };
  for (let i = 0; i < 15; i++) next();

  const init = p.init;
  // Uniform on [offset − scale, offset + scale]: a std of s needs scale s·√3.
  const scale = init.kind === 'linear' ? Math.sqrt(3 / init.fanIn) : init.kind === 'unit' ? 1 : 0.1;
  const offset = init.kind === 'norm' ? 1 : 0;
  const k = (2 * scale) / 2 ** 32;
  const total = p.shape.reduce((x, y) => x * y, 1);
  for (let done = 0; done < total; done += CHUNK) {
    const out = new Float32Array(Math.min(CHUNK, total - done));
    for (let i = 0; i < out.length; i++) out[i] = offset + (next() + 2 ** 31) * k - scale;
    yield out;
  }
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addedToken,
  RANDOM_WORDS,
  type RandomCheckpointSpec,
  TensorPlanner,
  TORCH_DTYPE,
  tokenizerJson,
  writeTensors,
} from './random-checkpoint.js';
import type { FloatDtype } from './safetensors-writer.js';

export interface RandomIdefics3Spec {
  /** `smolvlm` (SmolVLM2, the default) or `idefics3` (SmolVLM v1). */
  modelType?: 'smolvlm' | 'idefics3';
  vision: {
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    /** Side of a tile / video frame in pixels (also the processor's max_image_size). */
    imageSize: number;
    patchSize: number;
  };
  /** Pixel shuffle factor: each LLM token is scale × scale patches. */
  scaleFactor: number;
  /** A Llama text model. Without `vocabSize`, the vocabulary is the tokenizer's; a larger one pads rows. */
  text: Omit<RandomCheckpointSpec['text'], 'family' | 'vocabSize'> & { vocabSize?: number };
  seed: number;
  dtype?: FloatDtype;
}

/** SmolVLM2's special tokens, ids 0.. in this order (the real tokenizer has them past its BPE vocabulary). */
const SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<end_of_utterance>',
  '<fake_token_around_image>',
  '<image>',
  '<global-img>',
  ...Array.from({ length: 36 }, (_, i) => `<row_${Math.floor(i / 6) + 1}_col_${(i % 6) + 1}>`),
];
const IMAGE_TOKEN = '<image>';

/** What SmolVLM2's video prompt says besides the question: its intro and the frame times. */
const PROMPT_WORDS = [
  'User',
  'Assistant',
  'You',
  'provided',
  'following',
  'series',
  'frames',
  'from',
  'video',
  'Frame',
  'H',
  'MM',
  'SS',
  '[',
  ']',
  'zero',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  ...Array.from({ length: 10 }, (_, i) => `0${i}`),
];

/**
 * transformers' SmolVLMProcessor DEFAULT_CHAT_TEMPLATE (SmolVLM2's chat_template.json with the `<video>` item):
 * `<|im_start|>`, the capitalised role, `:` (`: ` unless the first item is an image), the items,
 * `<end_of_utterance>\n`, and `Assistant:` as the generation prompt.
 */
export const SMOLVLM_CHAT_TEMPLATE =
  "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}" +
  "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}" +
  "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}" +
  "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}" +
  "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/**
 * Writes a complete SmolVLM2 / Idefics3 checkpoint with seeded random weights in the layout transformers
 * saves (`model.vision_model.*`, `model.connector.*`, `model.text_model.*`, `lm_head`), with a word-level
 * tokenizer that has SmolVLM2's special tokens, its chat template and preprocessor_config.json.
 */
export function writeRandomIdefics3Checkpoint(dir: string, spec: RandomIdefics3Spec): void {
  const words = [...new Set([...SPECIAL_TOKENS, ...RANDOM_WORDS, ...PROMPT_WORDS])];
  const vocabSize = spec.text.vocabSize ?? words.length;
  if (vocabSize < words.length) throw new Error(`vocabSize must be at least ${words.length}`);
  const { imageSize, patchSize } = spec.vision;
  if ((imageSize / patchSize) % spec.scaleFactor !== 0) {
    throw new Error(`scaleFactor ${spec.scaleFactor} must divide the ${imageSize / patchSize} patches per side`);
  }
  mkdirSync(dir, { recursive: true });
  const json = (name: string, value: unknown) => writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
  const id = (token: string) => words.indexOf(token);

  json('config.json', hfConfig(spec, vocabSize, id(IMAGE_TOKEN)));
  json('generation_config.json', {
    _from_model_config: true,
    bos_token_id: id('<|im_start|>'),
    eos_token_id: [id('<|im_end|>'), id('<end_of_utterance>')],
    pad_token_id: id('<|im_end|>'),
    transformers_version: '4.50.0',
  });
  json('tokenizer.json', tokenizerJson(SPECIAL_TOKENS, words, '<|im_start|>', '<|endoftext|>'));
  json('tokenizer_config.json', {
    added_tokens_decoder: Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [String(i), addedToken(t)])),
    additional_special_tokens: ['<fake_token_around_image>', '<image>', '<end_of_utterance>'],
    bos_token: '<|im_start|>',
    chat_template: SMOLVLM_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<end_of_utterance>',
    extra_special_tokens: {
      end_of_utterance_token: '<end_of_utterance>',
      fake_image_token: '<fake_token_around_image>',
      global_image_token: '<global-img>',
      image_token: IMAGE_TOKEN,
    },
    model_max_length: spec.text.maxPositions ?? 8192,
    pad_token: '<|im_end|>',
    processor_class: 'SmolVLMProcessor',
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: '<|endoftext|>',
  });
  json('chat_template.json', { chat_template: SMOLVLM_CHAT_TEMPLATE });
  json('preprocessor_config.json', {
    do_convert_rgb: true,
    do_image_splitting: true,
    do_normalize: true,
    do_pad: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_processor_type: 'SmolVLMImageProcessor',
    image_std: [0.5, 0.5, 0.5],
    max_image_size: { longest_edge: imageSize },
    processor_class: 'SmolVLMProcessor',
    resample: 1,
    rescale_factor: 1 / 255,
    size: { longest_edge: 4 * imageSize },
    video_sampling: { fps: 1, max_frames: 64, video_size: { longest_edge: imageSize } },
  });
  writeTensors(dir, tensorPlan(spec, vocabSize), spec);
}

function hfConfig(spec: RandomIdefics3Spec, vocabSize: number, imageTokenId: number): Record<string, unknown> {
  const { vision: v, text: t } = spec;
  const smolvlm = (spec.modelType ?? 'smolvlm') === 'smolvlm';
  const tied = t.tieWordEmbeddings ?? false;
  return {
    architectures: [smolvlm ? 'SmolVLMForConditionalGeneration' : 'Idefics3ForConditionalGeneration'],
    image_token_id: imageTokenId,
    model_type: smolvlm ? 'smolvlm' : 'idefics3',
    scale_factor: spec.scaleFactor,
    text_config: {
      attention_bias: false,
      head_dim: t.hiddenSize / t.numHeads,
      hidden_act: 'silu',
      hidden_size: t.hiddenSize,
      intermediate_size: t.intermediateSize,
      max_position_embeddings: t.maxPositions ?? 8192,
      mlp_bias: false,
      model_type: 'llama',
      num_attention_heads: t.numHeads,
      num_hidden_layers: t.numLayers,
      num_key_value_heads: t.numKvHeads,
      rms_norm_eps: 1e-5,
      rope_scaling: null,
      rope_theta: t.ropeTheta ?? 100000,
      tie_word_embeddings: tied,
      vocab_size: vocabSize,
    },
    tie_word_embeddings: tied,
    torch_dtype: TORCH_DTYPE[spec.dtype ?? 'F32'],
    transformers_version: smolvlm ? '4.50.0' : '4.46.1',
    vision_config: {
      hidden_act: 'gelu_pytorch_tanh',
      hidden_size: v.hiddenSize,
      image_size: v.imageSize,
      intermediate_size: v.intermediateSize,
      layer_norm_eps: 1e-6,
      model_type: smolvlm ? 'smolvlm_vision' : 'idefics3_vision',
      num_attention_heads: v.numHeads,
      num_channels: 3,
      num_hidden_layers: v.numLayers,
      patch_size: v.patchSize,
    },
    vocab_size: vocabSize,
  };
}

function tensorPlan(spec: RandomIdefics3Spec, vocabSize: number) {
  const planner = new TensorPlanner();
  const v = spec.vision;
  const H = v.hiddenSize;
  const side = Math.floor(v.imageSize / v.patchSize);
  const vm = 'model.vision_model';
  planner.add(`${vm}.embeddings.patch_embedding.weight`, [H, 3, v.patchSize, v.patchSize], {
    kind: 'linear',
    fanIn: 3 * v.patchSize ** 2,
  });
  planner.add(`${vm}.embeddings.patch_embedding.bias`, [H], { kind: 'small' });
  planner.add(`${vm}.embeddings.position_embedding.weight`, [side * side, H], { kind: 'unit' });
  planner.vitLayers(`${vm}.encoder.layers`, H, v.intermediateSize, v.numLayers);
  planner.layerNorm(`${vm}.post_layernorm`, H);
  const t = { ...spec.text, family: 'llama' as const, vocabSize };
  planner.linear('model.connector.modality_projection.proj', t.hiddenSize, H * spec.scaleFactor ** 2, false);
  planner.textModel('model.text_model', t);
  // save_pretrained drops a tied lm_head.
  if (!(t.tieWordEmbeddings ?? false)) planner.linear('lm_head', vocabSize, t.hiddenSize, false);
  return planner.plan;
}

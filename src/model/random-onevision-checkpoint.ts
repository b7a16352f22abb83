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

export interface RandomOnevisionSpec {
  /** A SigLIP tower without its pooling head; `imageSize` is the tile size. */
  vision: Omit<RandomCheckpointSpec['vision'], 'family' | 'selectStrategy' | 'featureLayer'>;
  /** A Qwen2 decoder. */
  text: Omit<RandomCheckpointSpec['text'], 'family' | 'attentionBias' | 'mlpBias'>;
  /** Tiles per side of the largest pinpoint: image_grid_pinpoints are tile · {1..n}²; default 3. */
  maxTilesPerSide?: number;
  seed: number;
  dtype?: FloatDtype;
}

/** Qwen2's chat tokens, `<unk>` for the word-level vocabulary, then the image and video placeholders. */
const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<unk>', '<image>', '<video>'] as const;
const IM_END = 2;
const IMAGE_TOKEN_ID = 4;
const VIDEO_TOKEN_ID = 5;

/**
 * The chat template of llava-hf/llava-onevision-qwen2-0.5b-ov-hf: a message's images, then its videos,
 * then its text, each text after a newline.
 */
export const ONEVISION_CHAT_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}" +
  "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}" +
  "{{ '<image>' }}{% endfor %}" +
  "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}" +
  "{{ '<video>' }}{% endfor %}" +
  "{# Render all text next #}{% if message['role'] != 'assistant' %}" +
  "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}" +
  "{{ '\\n' + content['text'] }}{% endfor %}{% else %}" +
  "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}" +
  "{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}" +
  "{{'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * Writes a complete HF llava_onevision checkpoint with seeded random weights, in the key layout
 * transformers 4.46 saves (`vision_tower.*`, `multi_modal_projector.*`, `image_newline`,
 * `language_model.*`), with a word-level tokenizer and the 0.5B checkpoint's chat template.
 */
export function writeRandomOnevisionCheckpoint(dir: string, spec: RandomOnevisionSpec): void {
  const words = [...SPECIAL_TOKENS, ...RANDOM_WORDS].slice(0, spec.text.vocabSize);
  if (words.length < SPECIAL_TOKENS.length) throw new Error(`vocabSize must be at least ${SPECIAL_TOKENS.length}`);
  mkdirSync(dir, { recursive: true });
  const json = (name: string, value: unknown) => writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);

  const tile = spec.vision.imageSize;
  const n = spec.maxTilesPerSide ?? 3;
  const sides = Array.from({ length: n }, (_, i) => tile * (i + 1));
  const pinpoints = sides.flatMap((h) => sides.map((w) => [h, w]));
  json('config.json', hfConfig(spec, pinpoints));
  json('generation_config.json', { eos_token_id: IM_END, pad_token_id: 0, transformers_version: '4.46.1' });
  // Qwen2 has no BOS; the post-processor's is never used (prompts come from the chat template).
  json('tokenizer.json', tokenizerJson(SPECIAL_TOKENS, words, { unk: '<unk>', bos: '<|endoftext|>' }));
  json('tokenizer_config.json', {
    added_tokens_decoder: Object.fromEntries(SPECIAL_TOKENS.map((t, id) => [String(id), addedToken(t)])),
    bos_token: null,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    model_max_length: 32768,
    pad_token: '<|endoftext|>',
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: '<unk>',
  });
  json('chat_template.json', { chat_template: ONEVISION_CHAT_TEMPLATE });
  json('preprocessor_config.json', {
    do_convert_rgb: true,
    do_normalize: true,
    do_pad: true,
    do_rescale: true,
    do_resize: true,
    image_grid_pinpoints: pinpoints,
    image_mean: [0.5, 0.5, 0.5],
    image_processor_type: 'LlavaOnevisionImageProcessor',
    image_std: [0.5, 0.5, 0.5],
    processor_class: 'LlavaOnevisionProcessor',
    resample: 3,
    rescale_factor: 1 / 255,
    size: { height: tile, width: tile },
  });
  writeTensors(dir, tensorPlan(spec), spec);
}

function hfConfig(spec: RandomOnevisionSpec, pinpoints: number[][]): Record<string, unknown> {
  const { vision: v, text: t } = spec;
  return {
    architectures: ['LlavaOnevisionForConditionalGeneration'],
    image_grid_pinpoints: pinpoints,
    image_token_index: IMAGE_TOKEN_ID,
    model_type: 'llava_onevision',
    projector_hidden_act: 'gelu',
    text_config: {
      bos_token_id: null,
      eos_token_id: IM_END,
      hidden_act: 'silu',
      hidden_size: t.hiddenSize,
      intermediate_size: t.intermediateSize,
      max_position_embeddings: t.maxPositions ?? 32768,
      max_window_layers: t.numLayers,
      model_type: 'qwen2',
      num_attention_heads: t.numHeads,
      num_hidden_layers: t.numLayers,
      num_key_value_heads: t.numKvHeads,
      rms_norm_eps: 1e-6,
      rope_theta: t.ropeTheta ?? 1000000,
      sliding_window: null,
      tie_word_embeddings: t.tieWordEmbeddings ?? false,
      use_sliding_window: false,
      vocab_size: t.vocabSize,
    },
    tie_word_embeddings: t.tieWordEmbeddings ?? false,
    torch_dtype: TORCH_DTYPE[spec.dtype ?? 'F32'],
    transformers_version: '4.46.1',
    video_token_index: VIDEO_TOKEN_ID,
    vision_aspect_ratio: 'anyres_max_9',
    vision_config: {
      hidden_act: 'gelu_pytorch_tanh',
      hidden_size: v.hiddenSize,
      image_size: v.imageSize,
      intermediate_size: v.intermediateSize,
      layer_norm_eps: 1e-6,
      model_type: 'siglip_vision_model',
      num_attention_heads: v.numHeads,
      num_channels: 3,
      num_hidden_layers: v.numLayers,
      patch_size: v.patchSize,
      vision_use_head: false,
    },
    vision_feature_layer: -1,
    vision_feature_select_strategy: 'full',
  };
}

/** The tensors transformers 4.46 saves: SigLIP without its pooling head, projector, image_newline, Qwen2. */
function tensorPlan(spec: RandomOnevisionSpec) {
  const planner = new TensorPlanner();
  const { vision: v, text: t } = spec;
  const vm = 'vision_tower.vision_model';
  const H = v.hiddenSize;
  const grid = Math.floor(v.imageSize / v.patchSize);
  planner.add(`${vm}.embeddings.patch_embedding.weight`, [H, 3, v.patchSize, v.patchSize], {
    kind: 'linear',
    fanIn: 3 * v.patchSize ** 2,
  });
  planner.add(`${vm}.embeddings.patch_embedding.bias`, [H], { kind: 'small' });
  planner.add(`${vm}.embeddings.position_embedding.weight`, [grid * grid, H], { kind: 'unit' });
  planner.vitLayers(`${vm}.encoder.layers`, H, v.intermediateSize, v.numLayers);
  planner.layerNorm(`${vm}.post_layernorm`, H);
  planner.linear('multi_modal_projector.linear_1', t.hiddenSize, H, true);
  planner.linear('multi_modal_projector.linear_2', t.hiddenSize, t.hiddenSize, true);
  planner.add('image_newline', [t.hiddenSize], { kind: 'unit' });
  planner.textModel('language_model.model', { ...t, family: 'qwen2' });
  if (!(t.tieWordEmbeddings ?? false)) planner.linear('language_model.lm_head', t.vocabSize, t.hiddenSize, false);
  return planner.plan;
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addedToken,
  hfConfig,
  RANDOM_WORDS,
  type RandomCheckpointSpec,
  tensorPlan,
  tokenizerJson,
  writeWeights,
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
  const llava: RandomCheckpointSpec = {
    vision: { ...spec.vision, family: 'siglip', featureLayer: -1, selectStrategy: 'full' },
    text: { ...spec.text, family: 'qwen2' },
    seed: spec.seed,
    dtype: spec.dtype,
  };
  const words = [...SPECIAL_TOKENS, ...RANDOM_WORDS].slice(0, spec.text.vocabSize);
  if (words.length < SPECIAL_TOKENS.length) throw new Error(`vocabSize must be at least ${SPECIAL_TOKENS.length}`);
  mkdirSync(dir, { recursive: true });
  const json = (name: string, value: unknown) => writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);

  const tile = spec.vision.imageSize;
  const n = spec.maxTilesPerSide ?? 3;
  const sides = Array.from({ length: n }, (_, i) => tile * (i + 1));
  const pinpoints = sides.flatMap((h) => sides.map((w) => [h, w]));
  const base = hfConfig(llava);
  delete base.image_seq_length;
  json('config.json', {
    ...base,
    architectures: ['LlavaOnevisionForConditionalGeneration'],
    image_grid_pinpoints: pinpoints,
    image_token_index: IMAGE_TOKEN_ID,
    model_type: 'llava_onevision',
    text_config: { ...(base.text_config as object), bos_token_id: null, eos_token_id: IM_END },
    video_token_index: VIDEO_TOKEN_ID,
    vision_aspect_ratio: 'anyres_max_9',
    vision_config: { ...(base.vision_config as object), vision_use_head: false },
  });
  json('generation_config.json', { eos_token_id: IM_END, pad_token_id: 0, transformers_version: '4.46.1' });
  json('tokenizer.json', tokenizerJson(words, SPECIAL_TOKENS));
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
  const processor = {
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
  };
  json('preprocessor_config.json', processor);
  // The SigLIP pooling head is not saved (vision_use_head false); image_newline is.
  const tensors = tensorPlan(llava).filter((t) => !t.name.includes('.head.'));
  tensors.push({ name: 'image_newline', shape: [spec.text.hiddenSize], init: { kind: 'unit' } });
  writeWeights(dir, llava, tensors);
}

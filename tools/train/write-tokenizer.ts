/**
 * Writes the demo model's tokenizer files (tokenizer.json with a word-level vocabulary built from
 * src/synth/vocabulary.ts, tokenizer_config.json with the chat template, processor/chat-template
 * side files) into a folder. Training (Python) reads the vocabulary back from tokenizer.json.
 *
 *   node dist/tools/train/write-tokenizer.js <dir>
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { vocabularyWords } from '../../src/synth/vocabulary.js';

export const SPECIAL_TOKENS = ['<pad>', '<s>', '</s>', '<unk>', '<image>'] as const;

/**
 * The prompt contract: a frame marker (1-based frame index) before each image, the question, then
 * the generation prompt. Assistant turns (training/few-shot) end with the eos token.
 */
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}user :" +
  "{% if message['content'] is string %} {{ message['content'] }}{% else %}" +
  "{% for item in message['content'] %}{% if item['type'] == 'image' %} frame " +
  "{% if item['index'] is defined %}{{ item['index'] }}{% else %}{{ loop.index }}{% endif %} <image>" +
  "{% elif item['type'] == 'text' %} {{ item['text'] }}{% endif %}{% endfor %}{% endif %}" +
  "{% elif message['role'] == 'assistant' %} assistant :" +
  "{% if message['content'] is string %} {{ message['content'] }}{% else %}" +
  "{% for item in message['content'] %}{% if item['type'] == 'text' %} {{ item['text'] }}{% endif %}" +
  '{% endfor %}{% endif %}' +
  ' {{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %} assistant :{% endif %}';

export function buildVocab(): Record<string, number> {
  const vocab: Record<string, number> = {};
  for (const [i, w] of [...SPECIAL_TOKENS, ...vocabularyWords()].entries()) vocab[w] = i;
  return vocab;
}

export function writeTokenizerFiles(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const vocab = buildVocab();
  const added = SPECIAL_TOKENS.map((t, id) => ({
    id,
    content: t,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
  const addedDecoder = Object.fromEntries(
    added.map((a) => [
      String(a.id),
      { content: a.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    ]),
  );
  const config = {
    added_tokens_decoder: addedDecoder,
    add_bos_token: false,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    unk_token: '<unk>',
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 2048,
    padding_side: 'left',
    processor_class: 'LlavaProcessor',
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  const writeJson = (name: string, value: unknown) =>
    writeFileSync(path.join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
  writeJson('tokenizer.json', tokenizer);
  writeJson('tokenizer_config.json', config);
  writeJson('special_tokens_map.json', { bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' });
  writeJson('chat_template.json', { chat_template: CHAT_TEMPLATE });
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: write-tokenizer.js <dir>');
  writeTokenizerFiles(dir);
  console.log(`wrote tokenizer files to ${dir} (${Object.keys(buildVocab()).length} tokens)`);
}

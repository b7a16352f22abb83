/**
 * Renders the demo prompt exactly as the engine does (chat template through @huggingface/jinja,
 * tokenizer.json through @huggingface/tokenizers, no automatic special tokens, each <image>
 * expanded to tokensPerImage image tokens) and prints the ids as JSON, one line per question.
 * Training checks its own Python tokenization against this.
 *
 *   node dist/tools/train/prompt-ids.js <checkpoint-dir> <frames> <tokensPerImage> "<question>" ...
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';

const [dir, framesArg, tpiArg, ...questions] = process.argv.slice(2);
if (!dir || !framesArg || !tpiArg)
  throw new Error('usage: prompt-ids.js <dir> <frames> <tokensPerImage> <question>...');
const tokJson = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const tokCfg = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
const tokenizer = new Tokenizer(tokJson, tokCfg);
const template = new Template(tokCfg.chat_template);
const imageId = tokJson.model.vocab['<image>'] as number;
const frames = Number(framesArg);
const tpi = Number(tpiArg);
for (const q of questions) {
  const content = [
    ...Array.from({ length: frames }, (_, i) => ({ type: 'image', index: i + 1, timestamp: i / 4 })),
    { type: 'text', text: q },
  ];
  const text = template.render({
    messages: [{ role: 'user', content }],
    add_generation_prompt: true,
    bos_token: tokCfg.bos_token,
    eos_token: tokCfg.eos_token,
  });
  const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
  const expanded = ids.flatMap((id: number) => (id === imageId ? Array(tpi).fill(imageId) : [id]));
  console.log(JSON.stringify({ question: q, text, ids: expanded }));
}

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { ModelError } from '../errors.js';
import { isObject, readJsonObject } from './json-file.js';
import type { SpecialTokens } from './tokenizer.js';

/** Hugging Face multimodal message content. `index` is 1-based over the prompt's images. */
export type ChatContent =
  | { type: 'text'; text: string }
  | { type: 'image'; index: number; timestamp: number }
  | { type: 'video' };

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: ChatContent[];
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    /** Where the template came from, for error messages. */
    readonly file: string,
    private readonly specialTokens: SpecialTokens,
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new ModelError(
        `the chat template in ${file} does not parse: ${(err as Error).message}`,
        'fix the template or download the file again',
      );
    }
  }

  renderChat(messages: readonly ChatMessage[], { addGenerationPrompt = false } = {}): string {
    try {
      return this.template.render({ ...this.specialTokens, messages, add_generation_prompt: addGenerationPrompt });
    } catch (err) {
      throw new ModelError(
        `the chat template in ${this.file} failed: ${(err as Error).message}`,
        "check the message roles and order this model's template expects",
      );
    }
  }
}

/**
 * Finds the chat template the way transformers' processor does: chat_template.jinja, then
 * chat_template.json, then tokenizer_config.json `chat_template` (a string, or a list of named
 * templates of which "default" is taken).
 */
export function loadChatTemplate(dir: string, specialTokens: SpecialTokens): ChatTemplate {
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaPath)) return new ChatTemplate(readFileSync(jinjaPath, 'utf8'), jinjaPath, specialTokens);

  for (const name of ['chat_template.json', 'tokenizer_config.json']) {
    const path = join(dir, name);
    if (!existsSync(path)) continue;
    const value = readJsonObject(path, '').chat_template;
    if (value === undefined || value === null) continue;
    return new ChatTemplate(pickTemplate(value, path), path, specialTokens);
  }
  throw new ModelError(
    `${dir} has no chat template (chat_template.jinja, chat_template.json or "chat_template" in tokenizer_config.json)`,
    "download the checkpoint's chat template file, " +
      'or add a chat_template.jinja that formats images and text for this model',
  );
}

function pickTemplate(value: unknown, path: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (t): t is { name: string; template: string } =>
        isObject(t) && typeof t.name === 'string' && typeof t.template === 'string',
    );
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    if (chosen) return chosen.template;
  }
  throw new ModelError(
    `${path}: field "chat_template" must be a string or a list of {name, template}`,
    'the file looks damaged or incomplete: download the checkpoint again',
  );
}

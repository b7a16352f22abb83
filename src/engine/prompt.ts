import { ModelError, UsageError } from '../errors.js';
import type { ModelFamily } from '../family/model-family.js';
import type { ChatContent, ChatTemplate } from '../model/chat-template.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import { type PromptLayout, sequentialLayout } from './prompt-layout.js';

/** What telling a placeholder in a question needs. */
export interface PlaceholderModel {
  tokenizer: TextTokenizer;
  family: Pick<ModelFamily, 'placeholders'>;
}

export interface PromptFrame {
  timestampS: number;
}

export interface BuiltPrompt {
  text: string;
  layout: PromptLayout;
}

/**
 * Frames in order (each image item carries its 1-based index and timestamp, for templates that print
 * them), then the question, through the checkpoint's chat template; each image token is then expanded
 * to the encoder's tokens per image, as Hugging Face's llava processor does.
 */
export function buildPrompt(
  tokenizer: TextTokenizer,
  template: ChatTemplate,
  imageTokenId: number,
  tokensPerImage: number,
  frames: readonly PromptFrame[],
  question: string,
): BuiltPrompt {
  const content: ChatContent[] = [
    ...frames.map(
      (f, i): ChatContent => ({ type: 'image', index: i + 1, timestamp: Math.round(f.timestampS * 100) / 100 }),
    ),
    { type: 'text', text: question },
  ];
  const text = template.renderChat([{ role: 'user', content }], { addGenerationPrompt: true });
  const rendered = tokenizer.encode(text);
  const found = rendered.filter((id) => id === imageTokenId).length;
  if (found !== frames.length) {
    throw new ModelError(
      `the chat template placed ${found} image token(s) for ${frames.length} frame(s)`,
      `the template must print the image token (id ${imageTokenId}) once per {type: "image"} content item`,
    );
  }
  const ids: number[] = [];
  const visualRows: number[] = [];
  for (const id of rendered) {
    if (id === imageTokenId) for (let k = 0; k < tokensPerImage; k++) visualRows.push(ids.length + k);
    if (id !== imageTokenId) ids.push(id);
    else for (let k = 0; k < tokensPerImage; k++) ids.push(imageTokenId);
  }
  return { text, layout: sequentialLayout(ids, visualRows) };
}

/**
 * The model's image or video placeholder (e.g. `<image>`) when a question contains one: the prompt would
 * then have one placeholder more than visuals. Undefined for an ordinary question.
 */
export function placeholderIn(model: PlaceholderModel, question: string): string | undefined {
  const ids = new Set(model.tokenizer.encode(question));
  return model.family.placeholders().find((p) => ids.has(p.id))?.text;
}

/** Refuses a question with a placeholder in it (a usage error that says what to do). */
export function rejectPlaceholders(model: PlaceholderModel, question: string): void {
  const placeholder = placeholderIn(model, question);
  if (placeholder) {
    throw new UsageError(
      `the question contains ${placeholder}, the model's image placeholder`,
      'remove it: the frames are placed in the prompt by the chat template',
    );
  }
}

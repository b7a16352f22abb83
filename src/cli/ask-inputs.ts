import { existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { MediaError, UsageError } from '../errors.js';

const USAGE = 'usage: sieve ask <video|image…> "<question>"';

/** Splits `<video|image…> "<question>"`: the last argument is the question. */
export function splitInputs(args: string[]): { inputs: string[]; question: string } {
  if (args.length < 2) {
    throw new UsageError(args.length === 0 ? 'missing the video and the question' : 'missing the question', USAGE);
  }
  return { inputs: args.slice(0, -1), question: args[args.length - 1] };
}

/**
 * Checks the command line before any work (decoding a 4K clip can take seconds): an empty question,
 * the question and the file swapped, a question that was not quoted, a missing or unreadable file.
 */
export function checkAskInputs(inputs: readonly string[], question: string): void {
  const missing = inputs.filter((f) => !existsSync(f));
  if (missing.length > 0 && isFile(question)) {
    throw new UsageError(
      `"${question}" is a file and "${missing[0]}" is not: the question comes after the video`,
      `${USAGE}, e.g. sieve ask ${question} "${missing[0]}"`,
    );
  }
  const files = inputs.filter((f) => existsSync(f));
  const words = missing.filter((f) => extname(f) === '' || /\s|\?$/.test(f));
  if (files.length > 0 && words.length > 0 && words.length === missing.length) {
    const sentence = [...words, question].join(' ');
    throw new UsageError(
      `"${words[0]}" is not a file: it looks like part of the question, which needs quotes`,
      `quote the whole question: sieve ask ${files.join(' ')} "${sentence}"`,
    );
  }
  for (const file of inputs) {
    if (!existsSync(file)) throw new MediaError(`video or image file not found: ${file}`, 'check the path');
    if (statSync(file).isDirectory())
      throw new MediaError(`${file} is a folder, not a video or image file`, 'give the path of a video or image file');
  }
  if (question.trim() === '')
    throw new UsageError('the question is empty', 'ask something about the video, e.g. "what colour is the square?"');
}

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

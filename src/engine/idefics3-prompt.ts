/**
 * The prompt Idefics3's / SmolVLM's processor and chat template build around the visual tokens, as pieces a
 * tokenizer turns into ids: text, special tokens by their string, and runs of `<image>` tokens that a unit's
 * rows fill in order.
 */
import { cardinalWords } from './number-words.js';
import { type PromptLayout, sequentialLayout } from './prompt-layout.js';

/** The processor's token strings (SmolVLM reads them from tokenizer attributes; these are the defaults). */
export const IDEFICS3_TOKENS = {
  start: '<|im_start|>',
  endOfUtterance: '<end_of_utterance>',
  fakeImage: '<fake_token_around_image>',
  image: '<image>',
  globalImage: '<global-img>',
  tile: (row: number, col: number) => `<row_${row}_col_${col}>`,
} as const;

export type PromptPiece =
  /** Text the tokenizer encodes; adjacent text is merged (the two `\n` before a global image become `\n\n`). */
  | { text: string }
  /** One special token, by its string. */
  | { special: string }
  /** `tokens` `<image>` tokens, filled with unit `unit`'s visual rows in order. */
  | { unit: number; tokens: number };

export type Idefics3Visual =
  /** Images in order, each with the split its processor made (0 × 0: not split, one unit). */
  | { kind: 'images'; splits: readonly { rows: number; cols: number }[] }
  /** SmolVLM2's video layout: one unit per frame, with the frame times and the video's duration. */
  | { kind: 'video'; timestampsS: readonly number[]; durationS: number };

/**
 * The whole prompt of one user turn and the generation prompt, as the SmolVLM chat template writes it:
 * `<|im_start|>User:` (a space after the colon unless the first item is an image), the visual items, the
 * question, `<end_of_utterance>\nAssistant:`. Units are numbered as the processor orders them: per image its
 * tiles row-major then the global image; per video its frames.
 */
export function idefics3Prompt(visual: Idefics3Visual, question: string, tokensPerImage: number): PromptPiece[] {
  const out = new PieceList();
  out.special(IDEFICS3_TOKENS.start);
  out.text(visual.kind === 'images' && visual.splits.length > 0 ? 'User:' : 'User: ');
  if (visual.kind === 'images') {
    let unit = 0;
    for (const split of visual.splits) unit = imageString(out, split, unit, tokensPerImage);
  } else {
    videoString(out, visual, tokensPerImage);
  }
  out.text(question);
  out.special(IDEFICS3_TOKENS.endOfUtterance);
  out.text('\nAssistant:');
  return out.pieces;
}

/**
 * Turns pieces into the engine's prompt layout with the model's tokenizer (`encode` adds no special tokens):
 * visual token u·N + t (unit u, its t-th row) sits in the t-th row of unit u's `<image>` run; positions 0..n−1.
 */
export function idefics3Layout(
  pieces: readonly PromptPiece[],
  encode: (text: string) => number[],
  specialId: (token: string) => number,
  imageTokenId: number,
): PromptLayout {
  const ids: number[] = [];
  const visualRows: number[] = [];
  for (const piece of pieces) {
    if ('text' in piece) ids.push(...encode(piece.text));
    else if ('special' in piece) ids.push(specialId(piece.special));
    else {
      if (visualRows.length !== piece.unit * piece.tokens) {
        throw new Error(`prompt pieces: unit ${piece.unit} is out of order (units are numbered as they appear)`);
      }
      for (let t = 0; t < piece.tokens; t++) {
        visualRows.push(ids.length);
        ids.push(imageTokenId);
      }
    }
  }
  return sequentialLayout(ids, visualRows);
}

/** `get_image_prompt_string`; returns the next unit number. */
function imageString(out: PieceList, split: { rows: number; cols: number }, first: number, tokens: number): number {
  let unit = first;
  if (split.rows > 0 || split.cols > 0) {
    for (let r = 1; r <= split.rows; r++) {
      for (let c = 1; c <= split.cols; c++) {
        out.special(IDEFICS3_TOKENS.fakeImage);
        out.special(IDEFICS3_TOKENS.tile(r, c));
        out.image(unit++, tokens);
      }
      out.text('\n');
    }
    out.text('\n');
  }
  out.special(IDEFICS3_TOKENS.fakeImage);
  out.special(IDEFICS3_TOKENS.globalImage);
  out.image(unit++, tokens);
  out.special(IDEFICS3_TOKENS.fakeImage);
  return unit;
}

/** SmolVLMProcessor's video expansion: intro, `\nFrame from MM:SS:` + the single-image string per frame, `\n\n`. */
function videoString(
  out: PieceList,
  video: { timestampsS: readonly number[]; durationS: number },
  tokens: number,
): void {
  const frames = video.timestampsS.length;
  out.text(
    `You are provided the following series of ${cardinalWords(frames)} frames ` +
      `from a ${durationString(video.durationS)} [H:MM:SS] video.\n`,
  );
  video.timestampsS.forEach((seconds, unit) => {
    const mm = String(Math.floor(seconds / 60)).padStart(2, '0');
    const ss = String(Math.floor(seconds % 60)).padStart(2, '0');
    out.text(`\nFrame from ${mm}:${ss}:`);
    imageString(out, { rows: 0, cols: 0 }, unit, tokens);
  });
  out.text('\n\n');
}

/** Python's str(timedelta(seconds=int(s))): `H:MM:SS`, with `N day(s), ` in front past 24 h. */
export function durationString(seconds: number): string {
  const total = Math.trunc(seconds);
  const days = Math.floor(total / 86400);
  const rest = total % 86400;
  const hms = `${Math.floor(rest / 3600)}:${pad2(Math.floor(rest / 60) % 60)}:${pad2(rest % 60)}`;
  return days > 0 ? `${days} day${days > 1 ? 's' : ''}, ${hms}` : hms;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

class PieceList {
  readonly pieces: PromptPiece[] = [];

  text(text: string): void {
    const last = this.pieces.at(-1);
    if (last && 'text' in last) last.text += text;
    else this.pieces.push({ text });
  }

  special(special: string): void {
    this.pieces.push({ special });
  }

  image(unit: number, tokens: number): void {
    this.pieces.push({ unit, tokens });
  }
}

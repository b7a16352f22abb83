import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelError } from '../errors.js';
import { isObject, readJsonObject } from './json-file.js';

const MISSING_HINT =
  'download tokenizer.json and tokenizer_config.json with the checkpoint ' +
  '(only "fast" tokenizer.json tokenizers are supported)';

/** The special tokens tokenizer_config.json names, as strings (the chat template sees them too). */
export interface SpecialTokens {
  bos_token: string | null;
  eos_token: string | null;
  pad_token: string | null;
  unk_token: string | null;
}

export class TextTokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;

  constructor(
    private readonly tokenizer: Tokenizer,
    readonly specialTokens: SpecialTokens,
  ) {
    this.bosTokenId = this.idOf(specialTokens.bos_token);
    this.eosTokenId = this.idOf(specialTokens.eos_token);
  }

  private idOf(token: string | null): number | null {
    return token === null ? null : (this.tokenizer.token_to_id(token) ?? null);
  }

  /** Special tokens (e.g. a BOS the post-processor adds) only when asked: chat templates write their own. */
  encode(text: string, { addSpecialTokens = false } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], { skipSpecialTokens = false } = {}): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }
}

/** Loads tokenizer.json + tokenizer_config.json from a checkpoint folder. */
export function loadTokenizer(dir: string): TextTokenizer {
  const jsonPath = join(dir, 'tokenizer.json');
  const tokenizerJson = readJsonObject(jsonPath, MISSING_HINT);
  const configPath = join(dir, 'tokenizer_config.json');
  const config = readJsonObject(configPath, MISSING_HINT);

  const specialTokens: SpecialTokens = {
    bos_token: tokenString(config.bos_token),
    eos_token: tokenString(config.eos_token),
    pad_token: tokenString(config.pad_token),
    unk_token: tokenString(config.unk_token),
  };
  // tokenizers.js wants plain strings here, and takes a WordLevel model's unknown token from the config.
  const model = isObject(tokenizerJson.model) ? tokenizerJson.model : {};
  const unk = specialTokens.unk_token ?? (typeof model.unk_token === 'string' ? model.unk_token : null);
  const jsConfig = { ...config, ...specialTokens, unk_token: unk };

  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer({ added_tokens: [], ...tokenizerJson }, jsConfig);
  } catch (err) {
    throw new ModelError(
      `cannot load the tokenizer in ${jsonPath}: ${(err as Error).message}`,
      'the file may be damaged or use a tokenizer type that tokenizers.js does not support',
    );
  }
  return new TextTokenizer(tokenizer, specialTokens);
}

/** tokenizer_config.json writes a special token as a string or as an AddedToken object. */
function tokenString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  return null;
}

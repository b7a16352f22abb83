import { readFileSync } from 'node:fs';
import { ModelError } from '../errors.js';

const DAMAGED_HINT = 'the file looks damaged or incomplete: download the checkpoint again';

/** Reads and parses a JSON object; a missing file or malformed JSON is a ModelError naming the file. */
export function readJsonObject(path: string, missingHint: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ModelError(`${path} is missing`, missingHint);
    throw new ModelError(`cannot read ${path}: ${(err as Error).message}`, 'check the file permissions');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ModelError(`${path} is not valid JSON: ${(err as Error).message}`, DAMAGED_HINT);
  }
  if (!isObject(value)) throw new ModelError(`${path} must contain a JSON object`, DAMAGED_HINT);
  return value;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Typed access to the fields of one JSON object, with errors that name the file and the full field
 * path (`text_config.hidden_size`). A field that is absent or null takes the default when one is given.
 */
export class JsonFields {
  constructor(
    readonly file: string,
    readonly obj: Record<string, unknown>,
    private readonly prefix = '',
  ) {}

  path(key: string): string {
    return this.prefix + key;
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  fail(key: string, problem: string): never {
    throw new ModelError(`${this.file}: field "${this.path(key)}" ${problem}`, DAMAGED_HINT);
  }

  private value(key: string, fallback: unknown): unknown {
    if (this.has(key)) return this.obj[key];
    if (fallback === undefined) throw new ModelError(`${this.file}: missing field "${this.path(key)}"`, DAMAGED_HINT);
    return fallback;
  }

  sub(key: string): JsonFields {
    const v = this.value(key, undefined);
    if (!isObject(v)) this.fail(key, `must be an object, got ${JSON.stringify(v)}`);
    return new JsonFields(this.file, v, `${this.path(key)}.`);
  }

  int(key: string, fallback?: number, min = 1): number {
    const v = this.value(key, fallback);
    if (!Number.isInteger(v) || (v as number) < min)
      this.fail(key, `must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  }

  /** Any integer, negative allowed. */
  signedInt(key: string, fallback?: number): number {
    return this.int(key, fallback, Number.MIN_SAFE_INTEGER);
  }

  positive(key: string, fallback?: number): number {
    const v = this.value(key, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      this.fail(key, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.value(key, fallback);
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.value(key, fallback);
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A token id field that may be absent, one id, or a list of ids (HF eos_token_id). */
  idList(key: string): number[] {
    if (!this.has(key)) return [];
    const v = this.obj[key];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => Number.isInteger(x) && x >= 0))
      this.fail(key, `must be a token id or a list of token ids, got ${JSON.stringify(v)}`);
    return list as number[];
  }

  numberTriple(key: string, fallback: readonly [number, number, number]): [number, number, number] {
    const v = this.value(key, fallback);
    const list = typeof v === 'number' ? [v, v, v] : v;
    if (!Array.isArray(list) || list.length !== 3 || !list.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      this.fail(key, `must be a number or a list of 3 numbers, got ${JSON.stringify(v)}`);
    }
    return [list[0], list[1], list[2]];
  }
}

import { UsageError } from '../errors.js';

/** How one method option is read: its default, and how a given value (number, boolean or CLI string) is parsed. */
export interface OptionSpec<T> {
  default: T;
  /** What the option accepts, for error messages. */
  expects: string;
  /** The parsed value, or undefined when `value` is not acceptable. */
  parse(value: unknown): T | undefined;
}

type Bounds = { min?: number; max?: number; integer?: boolean };

function parseNumber(value: unknown, { min = -Infinity, max = Infinity, integer = false }: Bounds): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n)))
    return undefined;
  return n;
}

function describeBounds(b: Bounds): string {
  const kind = b.integer ? 'an integer' : 'a number';
  if (b.min !== undefined && b.max !== undefined) return `${kind} in [${b.min}, ${b.max}]`;
  if (b.min !== undefined) return `${kind} ≥ ${b.min}`;
  return kind;
}

export function num(defaultValue: number, bounds: Bounds = {}): OptionSpec<number> {
  return { default: defaultValue, expects: describeBounds(bounds), parse: (v) => parseNumber(v, bounds) };
}

/** A number with no default: the method derives it (e.g. ViTCoP's D from L) unless it is given. */
export function optionalNum(bounds: Bounds = {}): OptionSpec<number | undefined> {
  return { default: undefined, expects: describeBounds(bounds), parse: (v) => parseNumber(v, bounds) };
}

const TRUE = new Set<unknown>([true, 'true', 'on', 'yes', '1']);
const FALSE = new Set<unknown>([false, 'false', 'off', 'no', '0']);

export function bool(defaultValue: boolean): OptionSpec<boolean> {
  return {
    default: defaultValue,
    expects: 'on or off',
    parse: (v) => (TRUE.has(v) ? true : FALSE.has(v) ? false : undefined),
  };
}

export function choice<const C extends string>(choices: readonly C[], defaultValue: C): OptionSpec<C> {
  return {
    default: defaultValue,
    expects: `one of ${choices.join(', ')}`,
    parse: (v) => ((choices as readonly unknown[]).includes(v) ? (v as C) : undefined),
  };
}

export type OptionValues<S extends Record<string, OptionSpec<unknown>>> = { [K in keyof S]: S[K]['default'] };

/**
 * A method's options from config: the defaults of `spec` overridden by `given`. An unknown name or a
 * bad value is a UsageError that lists what the method accepts.
 */
export function readOptions<S extends Record<string, OptionSpec<unknown>>>(
  method: string,
  given: Record<string, unknown>,
  spec: S,
): OptionValues<S> {
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(spec)) out[name] = s.default;
  for (const [name, value] of Object.entries(given)) {
    const s = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!s) {
      const names = Object.keys(spec);
      throw new UsageError(
        `${method} has no option "${name}"`,
        names.length ? `${method} options: ${names.join(', ')}` : `${method} takes no options`,
      );
    }
    const parsed = s.parse(value);
    if (parsed === undefined)
      throw new UsageError(`${method} option ${name}=${String(value)} is not valid`, `${name} must be ${s.expects}`);
    out[name] = parsed;
  }
  return out as OptionValues<S>;
}

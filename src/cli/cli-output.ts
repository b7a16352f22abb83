import { isAbsolute, relative } from 'node:path';
import cliProgress from 'cli-progress';
import { CommanderError } from 'commander';
import { SieveError, UsageError } from '../errors.js';
import { PACKAGE_ROOT } from './default-model.js';

/**
 * Prints an error the way a user should see it and returns the exit code (1 runtime, 2 usage). With
 * `json`, stdout also gets `{"error": …, "hint": …}`, so a script reading the JSON output sees why.
 */
export function reportError(err: unknown, { json = false } = {}): number {
  let message: string;
  let hint: string | undefined;
  let code: number;
  if (err instanceof CommanderError) {
    if (err.exitCode === 0) return 0;
    message = err.message.replace(/^error: /, '');
    code = 2;
  } else if (err instanceof SieveError) {
    process.stderr.write(`error: ${err.message}\n`);
    if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
    ({ message, hint } = err);
    code = err.exitCode;
  } else {
    process.stderr.write(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    message = `internal error: ${err instanceof Error ? err.message : String(err)}`;
    code = 1;
  }
  if (json) process.stdout.write(`${JSON.stringify({ error: message, ...(hint ? { hint } : {}), exit_code: code })}\n`);
  return code;
}

export function parseInteger(value: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in ${min}..${max}`;
    throw new UsageError(`${flag} must be an integer ${range}, got "${value}"`);
  }
  return n;
}

export function parseNumber(
  value: string,
  flag: string,
  min: number,
  max: number,
  { exclusiveMin = false } = {},
): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max || (exclusiveMin && n === min)) {
    throw new UsageError(`${flag} must be a number in ${exclusiveMin ? '(' : '['}${min}, ${max}], got "${value}"`);
  }
  return n;
}

export function parseChoice<T extends string>(value: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value))
    throw new UsageError(`${flag} must be one of ${choices.join(', ')}, got "${value}"`);
  return value as T;
}

/** Without a terminal (logs, pipes, CI), at most one progress line this often. */
const LOG_INTERVAL_MS = 15_000;

export interface ProgressReporter {
  update(done: number, total: number, detail: string): void;
  /** Ends the display; without a terminal, one closing line says what was done and how long it took. */
  stop(): void;
}

/**
 * The one progress policy of every command: a labelled bar on stderr when it is a terminal; otherwise a
 * line when the work starts, then at most one every 15 s, and one at the end — a few lines a minute,
 * however many steps the work has.
 */
export function progressReporter(label: string): ProgressReporter {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% {detail}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(done, total, detail) {
        if (!started) {
          bar.start(total, done, { detail });
          started = true;
        }
        bar.setTotal(total);
        bar.update(done, { detail });
      },
      stop: () => started && bar.stop(),
    };
  }
  const startedAt = performance.now();
  let lastLineAt: number | undefined;
  let last: { done: number; total: number; detail: string } | undefined;
  return {
    update(done, total, detail) {
      last = { done, total, detail };
      const now = performance.now();
      if (lastLineAt === undefined || now - lastLineAt >= LOG_INTERVAL_MS) {
        process.stderr.write(`${label}: ${detail} (${done}/${total})\n`);
        lastLineAt = now;
      }
    },
    stop() {
      if (!last) return;
      const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
      process.stderr.write(`${label}: done, ${last.done}/${last.total} in ${seconds} s\n`);
      last = undefined;
    },
  };
}

/**
 * A path as results should record it, so that no machine's layout leaks into them: relative to the
 * current folder when inside it, else relative to this package for its own files (the shipped model
 * and clips), else as given.
 */
export function displayPath(path: string): string {
  for (const base of [process.cwd(), PACKAGE_ROOT]) {
    const rel = relative(base, path);
    if (rel === '') return '.';
    if (!rel.startsWith('..') && !isAbsolute(rel)) return rel;
  }
  return path;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

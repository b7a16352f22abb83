import cliProgress from 'cli-progress';
import { CommanderError } from 'commander';
import { SieveError, UsageError } from '../errors.js';

/** Prints an error the way a user should see it and returns the exit code (1 runtime, 2 usage). */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  if (err instanceof SieveError) {
    process.stderr.write(`error: ${err.message}\n`);
    if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
    return err.exitCode;
  }
  process.stderr.write(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}

export function parseInteger(value: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) {
    throw new UsageError(
      `${flag} must be an integer${max === Number.MAX_SAFE_INTEGER ? ` ≥ ${min}` : ` in ${min}..${max}`}, got "${value}"`,
    );
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

/** A progress bar on stderr when it is a terminal; plain lines otherwise (CI logs, pipes). */
export function progressReporter(label: string): {
  update(done: number, total: number, detail: string): void;
  stop(): void;
} {
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
  // Without a terminal (logs, pipes): a line at each tenth of the work, and at the end.
  let lastTenth = -1;
  return {
    update(done, total, detail) {
      const tenth = Math.floor((10 * done) / Math.max(1, total));
      if (tenth !== lastTenth || done === total) {
        process.stderr.write(`${label}: ${detail} (${done}/${total})\n`);
        lastTenth = tenth;
      }
    },
    stop() {},
  };
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

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';

/** `--out DIR` of every bench command: where its JSON goes (default: the current folder). */
export function addBenchOutOption(cmd: Command): Command {
  return cmd.option('--out <dir>', 'folder for the results JSON (default: the current folder)', '.');
}

/** Writes `sieve-bench-<kind>-<time>.json` into `outDir` (git ignores that name) and returns its path. */
export function writeBenchResult(outDir: string, kind: string, result: unknown): string {
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `sieve-bench-${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

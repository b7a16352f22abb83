import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelError } from '../errors.js';
import { type ExecutionProvider, missingProvider } from './ort-session.js';

/** Where a graph folder remembers the baselines measured for it, one per execution provider. */
export const BASELINE_FILE = 'runtime-baseline.json';

type Baselines = Partial<Record<ExecutionProvider, { peakRssBytes: number; node: string }>>;

function readBaselines(file: string): Baselines {
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Baselines;
  } catch {
    return {};
  }
}

/**
 * The resident bytes of the process before any model is loaded, on execution provider `ep`: measured
 * once in a child process (src/engine/runtime-baseline-probe.ts, ~0.5 s) and remembered in the graph
 * folder, so later answers only read it. A new Node version measures again.
 */
export function runtimeBaseline(graphDir: string, ep: ExecutionProvider): number {
  const file = join(graphDir, BASELINE_FILE);
  const known = readBaselines(file);
  const entry = known[ep];
  if (entry && entry.node === process.version) return entry.peakRssBytes;
  const probe = fileURLToPath(new URL('./runtime-baseline-probe.js', import.meta.url));
  // ONNX Runtime's own log lines stay in the child: a provider that cannot load is reported below.
  const out = execFileSync(process.execPath, [probe, ep], {
    encoding: 'utf8',
    timeout: 60_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const result = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { peakRssBytes?: number; error?: string };
  if (result.peakRssBytes === undefined) {
    const missing = missingProvider(ep, result.error ?? '');
    if (missing) throw missing;
    throw new ModelError(
      `cannot measure the ${ep} runtime's memory: ${result.error ?? 'the probe printed nothing'}`,
      '`sieve doctor` lists the execution providers this ONNX Runtime build has',
    );
  }
  known[ep] = { peakRssBytes: result.peakRssBytes, node: process.version };
  try {
    writeFileSync(file, `${JSON.stringify(known, null, 2)}\n`);
  } catch {
    // A read-only graph folder measures again next time; the answer does not depend on it.
  }
  return result.peakRssBytes;
}

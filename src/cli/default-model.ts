import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's own folder (this file is dist/src/cli/default-model.js). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** $SIEVE_MODEL, else the demo model shipped in models/demo. */
export function defaultModelDir(): string {
  return process.env.SIEVE_MODEL ?? join(PACKAGE_ROOT, 'models', 'demo');
}

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh folder under the system temp folder (sieve-<prefix>-XXXXXX) and the function that removes it
 * with everything in it: call that in the suite's `after` hook.
 */
export async function scratchDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `sieve-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError } from '../../src/errors.js';
import { tempDir } from './fixtures.js';

/** A temporary checkpoint folder holding just this config.json (and generation_config.json when given). */
export function dirWith(config: unknown, generation?: unknown): string {
  const dir = tempDir('config');
  writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  if (generation !== undefined) writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(generation));
  return dir;
}

/** `fn` throws a ModelError with a hint whose message contains every part (strings literally). */
export function throwsModelError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ModelError, `expected ModelError, got ${String(err)}`);
    for (const p of parts)
      assert.match(err.message, typeof p === 'string' ? new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : p);
    assert.ok(err.hint, 'has a hint');
    return true;
  });
}

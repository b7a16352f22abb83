import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, tempDir } from '../helpers/fixtures.js';

const bench = (out: string, ...args: string[]) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'sieve.js'), 'bench', ...args, '--out', out], {
    encoding: 'utf8',
    timeout: 120_000,
  });

const result = (dir: string) => JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]), 'utf8'));

describe('streaming benchmarks (short runs: they work and report; their figures are in docs/benchmarks.md)', () => {
  it('bench window: window vs ask time to first token, unpruned and ViTCoP, in one run', () => {
    const out = tempDir('benchwindow');
    const r = bench(out, 'window', '--repeat', '1', '--frames', '4');
    assert.equal(r.status, 0, r.stderr);
    const { methods, frames } = result(out);
    assert.equal(frames, 4);
    assert.deepEqual(
      methods.map((m: { method: string }) => m.method),
      ['none', 'vitcop'],
    );
    for (const m of methods) assert.ok(m.askTtftMs > 0 && m.windowTtftMs > 0 && m.ratio > 0);
  });

  it('bench soak: a short looped stream with queries all along loses none', () => {
    const out = tempDir('benchsoak');
    const r = bench(out, 'soak', '--minutes', '0.5', '--speed', '10', '--every', '0.5');
    assert.equal(r.status, 0, r.stderr);
    const { queries, frames } = result(out);
    assert.ok(queries.sent >= 3, `sent ${queries.sent}`);
    assert.equal(queries.lost, 0);
    assert.equal(queries.failed, 0);
    assert.ok(frames.encoded > 0);
  });
});

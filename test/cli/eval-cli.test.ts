import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, tempDir } from '../helpers/fixtures.js';

const sieve = (...args: string[]) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'sieve.js'), ...args], { encoding: 'utf8', timeout: 300_000 });

describe('sieve eval', () => {
  it('a missing split is a usage error that says how to make it', () => {
    const r = sieve('eval', '--data', tempDir('nodata'), '--split', 'test');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /no test split.*\n.*sieve synth --split test/);
  });

  it('scores the shipped examples; a corrupt clip gives per-item error lines and the other results still count', () => {
    const data = tempDir('evaldata');
    cpSync(join(REPO_ROOT, 'models', 'demo', 'examples'), data, { recursive: true });
    const jsonl = readFileSync(join(data, 'test.jsonl'), 'utf8').trim().split('\n');
    const broken = JSON.parse(jsonl[0]).video as string;
    writeFileSync(join(data, broken), Buffer.alloc(3000, 9));
    const perClip = jsonl.filter((l) => JSON.parse(l).video === broken).length;
    const out = join(tempDir('evalout'), 'eval.json');
    const r = sieve('eval', '--data', data, '--json', out);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stderr.split('\n').filter((l) => l.includes(broken)).length,
      perClip,
      'one error line per question of the broken clip',
    );
    const report = JSON.parse(readFileSync(out, 'utf8'));
    const s = report.summaries[0];
    assert.equal(s.n, jsonl.length);
    assert.equal(s.errors, perClip);
    assert.ok(
      s.correct >= 0.8 * (jsonl.length - perClip),
      `the demo model answers the intact clips: ${s.correct}/${jsonl.length - perClip}`,
    );
    assert.match(r.stdout, /accuracy \d+\.\d% \(\d+\/\d+\), \d+ item\(s\) failed/);
  });

  it('a memory budget skips the runs whose predicted peak exceeds it, and refuses when none fits', () => {
    const data = join(REPO_ROOT, 'models', 'demo', 'examples');
    const none = sieve('eval', '--data', data, '--n', '2', '--memory-budget', '1');
    assert.equal(none.status, 2, none.stderr);
    assert.match(none.stderr, /skipping none @ 1: its predicted peak .* exceeds the memory budget of 1 MB/);
    assert.match(none.stderr, /no method and budget fits the memory budget of 1 MB/);
    const roomy = sieve('eval', '--data', data, '--n', '2', '--memory-budget', '100000');
    assert.equal(roomy.status, 0, roomy.stderr);
    assert.match(roomy.stdout, /none @ 1: accuracy/);
  });
});

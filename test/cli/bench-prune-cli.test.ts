import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, tempDir } from '../helpers/fixtures.js';

const sieve = (cwd: string, ...args: string[]) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'sieve.js'), ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 300_000,
  });

describe('sieve bench prune', () => {
  it('times the chosen methods beside the unpruned run on the demo model and writes the JSON to --out', () => {
    const cwd = tempDir('benchprune');
    const r = sieve(cwd, 'bench', 'prune', '--repeat', '1', '--methods', 'random,vitcop', '--out', 'results');
    assert.equal(r.status, 0, r.stderr);
    for (const m of ['none', 'random', 'vitcop']) assert.match(r.stdout, new RegExp(`^${m} `, 'm'));
    assert.deepEqual(readdirSync(cwd), ['results'], 'nothing else written');
    const [file] = readdirSync(join(cwd, 'results'));
    assert.match(file, /^sieve-bench-prune-.+\.json$/);
    const result = JSON.parse(readFileSync(join(cwd, 'results', file), 'utf8'));
    assert.doesNotMatch(JSON.stringify(result), new RegExp(REPO_ROOT), 'no absolute path of this machine');
    assert.deepEqual(
      result.methods.map((m: { method: string }) => m.method),
      ['none', 'random', 'vitcop'],
    );
    const [none, random, vitcop] = result.methods;
    assert.equal(none.hostMs, 0);
    assert.ok(vitcop.hostMs > 0 && random.hostMs > 0);
    assert.ok(vitcop.layerAveragedTokens < 0.12 * none.layerAveragedTokens, 'pruned to the budget');
    assert.ok(random.prefillMs < none.prefillMs, 'pruning shortens the prefill');
  });

  it('an unknown method is a usage error listing the valid ones', () => {
    const r = sieve(tempDir('benchprune'), 'bench', 'prune', '--methods', 'vitcop,bogus');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /unknown method "bogus"[\s\S]*valid methods: none, random/);
  });

  it('an unknown --random-large shape is a usage error listing the shapes, before anything is written', () => {
    const r = sieve(tempDir('benchprune'), 'bench', 'prune', '--random-large', 'bogus');
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      /unknown --random-large shape "bogus"[\s\S]*valid shapes: llava, llava-siglip384, smolvlm2-256m/,
    );
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, tempDir } from '../helpers/fixtures.js';

const bench = (out: string, ...args: string[]) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'sieve.js'), 'bench', 'load', ...args, '--out', out], {
    encoding: 'utf8',
    timeout: 120_000,
  });

describe('sieve bench load (a short run: it works and reports; the figures are in docs/benchmarks.md)', () => {
  it('4 clients on 2 cameras for 6 s over HTTP: answers, latency percentiles, no lost replies', () => {
    const out = tempDir('benchload');
    const r = bench(out, '--clients', '4', '--minutes', '0.1');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /4 clients on 2 cameras for \d+ s: \d+ requests, \d+ answered, 0 busy, 0 errors, 0 lost/);
    assert.match(r.stdout, /latency p50 \d+ ms, p95 \d+ ms; streaming TTFT p50 \d+ ms/);
    const result = JSON.parse(readFileSync(join(out, readdirSync(out)[0]), 'utf8'));
    assert.equal(result.clients, 4);
    assert.equal(result.cameras, 2);
    assert.ok(result.requests.answered >= 4, JSON.stringify(result.requests));
    assert.equal(result.requests.lost, 0);
    assert.equal(result.requests.sent, result.requests.answered + result.requests.busy + result.requests.errors);
    assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p95 >= result.latencyMs.p50);
    assert.ok(result.streamTtftMs.p50 > 0, 'half of the clients stream');
    assert.ok(result.throughputPerS > 0 && result.peakRssBytes > 0);
    assert.deepEqual(Object.keys(result.frames).sort(), ['cam1', 'cam2']);
  });

  it('a bad --clients is a usage error', () => {
    const r = bench(tempDir('benchload2'), '--clients', '0');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--clients must be an integer in 1\.\.1000, got "0"/);
  });
});

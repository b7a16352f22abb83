import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/fixtures.js';

const CLIP = join(REPO_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');

function sieve(...args: string[]) {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'sieve.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The demo model: 64 visual tokens per frame, 4096 positions, so 62 frames and a prompt do not fit. */
describe('sieve ask: more frames than the context holds', () => {
  it('are thinned evenly to what fits, with a one-line notice; --json lists requested and used frames', () => {
    const r = sieve('ask', CLIP, 'what colour is the circle?', '--frames', '62', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^note: 62 frames requested, 61 fit the model's context \(4096 positions/m);
    assert.doesNotMatch(r.stderr, /\n\s+at |RotaryEmbedding|internal error/);
    const out = JSON.parse(r.stdout);
    assert.equal(out.frames_requested.length, 62);
    assert.equal(out.frames.length, 61);
    assert.ok(out.answer.length > 0);
    const used = out.frames.map((f: { t: number }) => f.t);
    assert.ok(used[0] < 0.1 && used.at(-1) >= 1.75, `spread over the whole clip: ${used[0]} … ${used.at(-1)}`);
  });

  it('pruned, too (positions are kept, so the budget does not make room)', () => {
    const r = sieve('ask', CLIP, 'what colour is the circle?', '--frames', '70', '--method', 'vitcop', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).frames.length, 61);
  });

  it('--strict refuses with the number that fits (exit 2), before decoding', () => {
    const r = sieve('ask', CLIP, 'what colour is the circle?', '--frames', '62', '--strict');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /62 frames requested but only 61 fit the model's context of 4096 positions/);
    assert.match(r.stderr, /hint: ask for at most 61 frames/);
  });

  it("a question with the model's image placeholder is refused before decoding (exit 2)", () => {
    const r = sieve('ask', CLIP, 'what is <image> here?');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /the question contains <image>, the model's image placeholder/);
  });

  it('the frame limits agree: the CLI and the config take 1..1024', () => {
    assert.match(sieve('ask', CLIP, 'q?', '--frames', '1025').stderr, /--frames must be an integer in 1\.\.1024/);
  });
});

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, tempDir, tinyCheckpoint } from '../helpers/fixtures.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const SIEVE = join(REPO_ROOT, 'bin', 'sieve.js');
const CLIP = join(REPO_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');
const QUESTION = 'what colour is the circle?';

function sieve(...args: string[]) {
  const r = spawnSync(process.execPath, [SIEVE, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertUserError(r: ReturnType<typeof sieve>, code: number, mentions: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, mentions);
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
}

/** A real `sieve serve` in its own process, on a free loopback port, once its HTTP API listens. */
async function serve(
  ...args: string[]
): Promise<{ url: string; stop: () => Promise<number | null>; log: () => string }> {
  const listen = `127.0.0.1:${await freePort()}`;
  const child: ChildProcess = spawn(process.execPath, [SIEVE, 'serve', '--http', listen, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitFor(() => log.includes(`HTTP API on http://${listen}`) || child.exitCode !== null, 60_000, 'sieve serve');
  assert.equal(child.exitCode, null, `sieve serve exited: ${log}`);
  return {
    url: `http://${listen}`,
    log: () => log,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

describe('sieve ask --server: the question and frames go to a running sieve serve --http', { timeout: 180_000 }, () => {
  let server: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    server = await serve();
  });
  after(async () => {
    assert.equal(await server.stop(), 0, server.log());
  });

  it('answers as sieve ask does here: the same frames, prompt and answer, the provenance from the server', () => {
    const local = sieve('ask', CLIP, QUESTION, '--json', '--frames', '4', '--method', 'vitcop');
    const remote = sieve(
      'ask',
      CLIP,
      QUESTION,
      '--json',
      '--frames',
      '4',
      '--method',
      'vitcop',
      '--server',
      server.url,
    );
    assert.equal(local.code, 0, local.stderr);
    assert.equal(remote.code, 0, remote.stderr);
    const [l, r] = [JSON.parse(local.stdout), JSON.parse(remote.stdout)];
    assert.equal(r.answer, 'purple');
    assert.equal(r.answer, l.answer);
    assert.equal(r.server, server.url);
    assert.equal(r.model, 'demo');
    assert.equal(r.frames.length, l.frames.length);
    assert.equal(r.method, 'vitcop');
    assert.equal(r.tokens.prompt, l.tokens.prompt);
    assert.equal(r.tokens.visual_input, l.tokens.visual_input, 'the method ran on the server as it does here');
    assert.ok(r.latency_ms.first_token > 0 && r.timings_ms.first_token_client > 0);
  });

  it('streams the answer to stdout and says where the time went on stderr', () => {
    const r = sieve('ask', CLIP, QUESTION, '--frames', '2', '--server', server.url);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'purple\n');
    assert.match(r.stderr, new RegExp(`server ${server.url} · decode \\d+ ms · upload .+ · first token \\d+ ms`));
  });

  it('refuses what only a local run can do, a server that is not there, and another model', async () => {
    assertUserError(sieve('ask', CLIP, QUESTION, '--server', server.url, '--threads', '1'), 2, /--threads is about/);
    assertUserError(sieve('ask', CLIP, QUESTION, '--server', 'ftp://x'), 2, /not an http\(s\) URL/);
    assertUserError(sieve('ask', CLIP, QUESTION, '--token', 'x'), 2, /--token is for --server/);
    const nobody = `http://127.0.0.1:${await freePort()}`;
    assertUserError(sieve('ask', CLIP, QUESTION, '--server', nobody), 1, /cannot reach sieve serve at .*ECONNREFUSED/);
    const other = tinyCheckpoint();
    assertUserError(
      sieve('ask', CLIP, QUESTION, '--server', server.url, '--model', other),
      2,
      /serves the model demo, not sieve-ckpt-/,
    );
  });

  it('with http.token: refused without it, answered with --token', async () => {
    const pipeline = join(tempDir('pipeline'), 'images.yaml');
    writeFileSync(pipeline, 'http:\n  token: s3cret\n');
    const guarded = await serve('--pipeline', pipeline);
    try {
      assertUserError(sieve('ask', CLIP, QUESTION, '--frames', '2', '--server', guarded.url), 2, /401[\s\S]*--token/);
      const r = sieve('ask', CLIP, QUESTION, '--frames', '2', '--server', guarded.url, '--token', 's3cret');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'purple\n');
    } finally {
      assert.equal(await guarded.stop(), 0, guarded.log());
    }
  });

  it('sieve serve without a pipeline needs --http', () => {
    assertUserError(sieve('serve'), 2, /needs --pipeline, or --http/);
  });
});

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { REPO_ROOT, tempDir, testVideo, tinyCheckpoint } from '../helpers/fixtures.js';

const SIEVE = join(REPO_ROOT, 'bin', 'sieve.js');

function sieve(...args: string[]) {
  const r = spawnSync(process.execPath, [SIEVE, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user error is one clear line (plus a hint), never a stack trace. */
function assertUserError(r: ReturnType<typeof sieve>, code: number, mentions: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, mentions);
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
}

describe('sieve ask, end to end on a real H.264 video', () => {
  let model: string;
  let video: string;
  before(async () => {
    model = tinyCheckpoint();
    video = await testVideo();
  });

  it('answers with provenance in --json: the frames and timestamps used, tokens, timings, memory', () => {
    const r = sieve(
      'ask',
      video,
      'what colour is the square ?',
      '--model',
      model,
      '--frames',
      '6',
      '--max-new-tokens',
      '5',
      '--json',
    );
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(typeof out.answer, 'string');
    assert.ok(out.answer.length > 0);
    assert.equal(out.frames.length, 6);
    const ts = out.frames.map((f: { t: number }) => f.t);
    assert.deepEqual(
      ts,
      [...ts].sort((a, b) => a - b),
    );
    assert.ok(ts[0] > 0 && ts[5] < 3, `timestamps inside the 3 s clip: ${ts}`);
    assert.equal(out.tokens.visual_input, 6 * 16);
    for (const k of ['decode', 'vision', 'prefill', 'generate', 'first_token']) assert.ok(out.timings_ms[k] >= 0, k);
    assert.ok(out.memory.peak_rss_bytes > 0 && out.memory.kv_used_bytes > 0);
  });

  it('streams the answer to stdout and the timing breakdown to stderr; same answer as --json (greedy)', () => {
    const json = JSON.parse(
      sieve('ask', video, 'is there a circle ?', '--model', model, '--max-new-tokens', '4', '--json').stdout,
    );
    const r = sieve('ask', video, 'is there a circle ?', '--model', model, '--max-new-tokens', '4');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), json.answer);
    assert.match(r.stderr, /decode \d+ ms · vision \d+ ms · prefill \d+ ms · generate \d+ ms/);
  });

  it('answers about images too, and samples by --fps', () => {
    const r = sieve('ask', video, 'how many ?', '--model', model, '--fps', '2', '--max-new-tokens', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).frames.length, 6);
  });

  it('reuses converted graphs on the second run (the cache is keyed by source hashes)', () => {
    const out = tempDir('graphs');
    const first = sieve('convert', model, '--out', out);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /built graphs/);
    const second = sieve('convert', model, '--out', out);
    assert.match(second.stderr, /reused cached graphs/);
    assert.equal(second.stdout.trim(), out);
  });

  it('lets two processes convert the same checkpoint into one folder at once (both succeed, the graphs are whole)', async () => {
    const out = tempDir('graphs-race');
    const convert = () =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [SIEVE, 'convert', model, '--out', out, '--force']);
        let stderr = '';
        child.stderr.on('data', (d) => {
          stderr += d;
        });
        child.on('close', (code) => resolve({ code, stderr }));
      });
    for (const r of await Promise.all([convert(), convert()])) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      readdirSync(out).filter((f) => f.endsWith('.tmp')),
      [],
      'no temporary files left',
    );
    assert.match(sieve('convert', model, '--out', out).stderr, /reused cached graphs/);
  });
});

describe('sieve ask: bad input gets a clear error', () => {
  let model: string;
  let video: string;
  before(async () => {
    model = tinyCheckpoint(2);
    video = await testVideo(2);
  });
  const brokenModel = (damage: (dir: string) => void) => {
    const dir = tempDir('broken');
    cpSync(model, dir, { recursive: true });
    damage(dir);
    return dir;
  };

  it('missing question → usage error (exit 2)', () =>
    assertUserError(sieve('ask', video, '--model', model), 2, /missing the question/));
  it('no arguments → usage error (exit 2)', () => assertUserError(sieve('ask'), 2, /error/));
  it('with --json, an error is also a JSON object on stdout', () => {
    const r = sieve('ask', video, '--model', model, '--json');
    assertUserError(r, 2, /missing the question/);
    assert.deepEqual(JSON.parse(r.stdout), {
      error: 'missing the question',
      hint: 'usage: sieve ask <video|image…> "<question>"',
      exit_code: 2,
    });
  });
  it('bad flag values → usage error naming the flag', () => {
    assertUserError(sieve('ask', video, 'q ?', '--model', model, '--frames', 'abc'), 2, /--frames must be an integer/);
    assertUserError(
      sieve('ask', video, 'q ?', '--model', model, '--frames', '4', '--fps', '1'),
      2,
      /--frames or --fps/,
    );
    assertUserError(sieve('ask', video, 'q ?', '--no-such-flag'), 2, /unknown option/);
  });
  it('missing model file → names the file', () =>
    assertUserError(
      sieve(
        'ask',
        video,
        'q ?',
        '--model',
        brokenModel((d) => rmSync(join(d, 'tokenizer.json'))),
      ),
      1,
      /tokenizer\.json/,
    ));
  it('missing model folder → says so', () =>
    assertUserError(sieve('ask', video, 'q ?', '--model', join(tempDir('none'), 'nothing')), 1, /does not exist/));
  it('truncated weights → names model.safetensors', () =>
    assertUserError(
      sieve(
        'ask',
        video,
        'q ?',
        '--model',
        brokenModel((d) => truncateSync(join(d, 'model.safetensors'), 4000)),
      ),
      1,
      /model\.safetensors/,
    ));
  it('weights that produce NaN (same size, corrupt values) → exit 1 naming corrupt weights, not empty', () => {
    const dir = brokenModel((d) => {
      const file = join(d, 'model.safetensors');
      const bytes = readFileSync(file);
      const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
      bytes.fill(0xff, dataStart); // every float becomes NaN
      writeFileSync(file, bytes);
    });
    assertUserError(sieve('ask', video, 'q ?', '--model', dir, '--frames', '2'), 1, /non-finite.*corrupt/s);
  });
  it('--budget without --method → usage error instead of being silently ignored', () =>
    assertUserError(
      sieve('ask', video, 'q ?', '--model', model, '--budget', '0.2'),
      2,
      /--budget was given without a pruning method.*\n.*--method/,
    ));
  it('--ep cuda without its libraries → names the missing provider libraries and sieve doctor, no ORT log', () => {
    const r = sieve('ask', video, 'q ?', '--model', model, '--frames', '2', '--ep', 'cuda');
    assertUserError(r, 1, /cuda execution provider cannot start: its libraries are missing/);
    assert.match(r.stderr, /sieve doctor/);
    assert.doesNotMatch(r.stderr, /onnxruntime/i);
  });
  it('usage errors come before any decoding: checked even when the video could not be decoded', () => {
    const junk = join(tempDir('junk'), 'junk.mp4');
    writeFileSync(junk, Buffer.alloc(5000, 7));
    assertUserError(sieve('ask', junk, 'q ?', '--model', model, '--method', 'nosuch'), 2, /unknown pruning method/);
    assertUserError(sieve('ask', junk, '  ', '--model', model), 2, /the question is empty/);
    assertUserError(sieve('ask', junk, 'q ?', '--model', join(tempDir('none'), 'x')), 1, /does not exist/);
    assertUserError(sieve('ask', junk, 'q ?', '--model', junk), 1, /is a file, not a checkpoint folder/);
  });
  it('the question and the file swapped, or a question without quotes → says how to write it', () => {
    assertUserError(
      sieve('ask', 'what colour is it?', video, '--model', model),
      2,
      /the question comes after the video/,
    );
    assertUserError(
      sieve('ask', video, 'what', 'colour', 'is', 'it', '--model', model),
      2,
      /needs quotes[\s\S]*quote the whole question: sieve ask .* "what colour is it"/,
    );
  });
  it('unsupported model_type → lists the supported ones', () => {
    const dir = brokenModel((d) => {
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, model_type: 'blip-2' }));
    });
    assertUserError(sieve('ask', video, 'q ?', '--model', dir), 1, /"blip-2" is not supported; supported: llava/);
  });
  it('unreadable video → says the file is not there', () =>
    assertUserError(sieve('ask', '/no/such/video.mp4', 'q ?', '--model', model), 1, /no\/such\/video\.mp4/));
  it('zero-length video → says it is empty', () => {
    const empty = join(tempDir('empty'), 'empty.mp4');
    writeFileSync(empty, '');
    assertUserError(sieve('ask', empty, 'q ?', '--model', model), 1, /empty|zero|0 bytes/i);
  });
  it('corrupt video → ffmpeg’s reason', () => {
    const junk = join(tempDir('junk'), 'junk.mp4');
    writeFileSync(junk, Buffer.alloc(5000, 7));
    assertUserError(sieve('ask', junk, 'q ?', '--model', model), 1, /junk\.mp4/);
  });
});

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, tempDir } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt-client.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const SIEVE = join(REPO_ROOT, 'bin', 'sieve.js');
const CLIP = join(REPO_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');

/** A running `sieve serve` with its stderr collected. */
function serve(pipeline: string, env: NodeJS.ProcessEnv = {}): { child: ChildProcess; log: () => string } {
  const child = spawn(process.execPath, [SIEVE, 'serve', '--pipeline', pipeline], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  return { child, log: () => log };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

const lines = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];

describe('sieve serve', { timeout: 120_000 }, () => {
  it('the shipped demo pipeline: camera demo, standing answers to JSONL, SIGTERM → exit 0', async () => {
    const answers = join(tempDir('serve'), 'answers.jsonl');
    const listen = `127.0.0.1:${await freePort()}`;
    const mqttListen = `127.0.0.1:${await freePort()}`;
    const { child, log } = serve(join(REPO_ROOT, 'pipelines', 'demo.yaml'), {
      SIEVE_ANSWERS: answers,
      SIEVE_HTTP_LISTEN: listen,
      SIEVE_MQTT_LISTEN: mqttListen,
    });
    const exit = exitOf(child);
    await waitFor(() => lines(answers).length >= 1, 60_000, `an answer (log: ${log()})`);
    assert.match(log(), new RegExp(`HTTP API on http://${listen}`));
    const asked = await fetch(`http://${listen}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        messages: [{ role: 'user', content: 'what colour is the circle?' }],
        sieve: { camera: 'demo' },
      }),
    });
    assert.equal(asked.status, 200);
    assert.equal((await asked.json()).choices[0].message.content, 'purple');
    // MQTT on the embedded broker: a query answered, the alert's state retained.
    const mqtt = await TestClient.connect(`mqtt://${mqttListen}`, 4);
    await mqtt.subscribe('sieve/demo/answer', 'sieve/demo/alerts/purple_circle');
    await mqtt.publish('sieve/demo/query', JSON.stringify({ id: 'cli', question: 'what colour is the circle?' }));
    assert.equal((await mqtt.reply('sieve/demo/answer', (j) => j.id === 'cli')).json.answer, 'purple');
    assert.equal((await mqtt.reply('sieve/demo/alerts/purple_circle', () => true)).json.state, 'yes');
    await mqtt.end();
    child.kill('SIGTERM');
    assert.equal(await exit, 0, log());
    const [first] = lines(answers);
    assert.equal(first.camera, 'demo');
    assert.equal(first.answer, 'purple');
    assert.equal(first.method, 'vitcop');
    assert.ok(first.frames.length >= 2 && first.frames.every((f: { t: number; at: string }) => f.t >= 0 && f.at));
    assert.ok(first.tokens.visual_layer_averaged < first.tokens.visual_input);
    assert.match(log(), /demo: source up/);
    assert.match(log(), /SIGTERM received, stopping[\s\S]*sieve: stopped/);
  });

  it('a camera that never connects leaves the others running; a watched folder answers each new clip', async () => {
    const dir = tempDir('serve2');
    const incoming = join(dir, 'incoming');
    const pipeline = join(dir, 'p.yaml');
    writeFileSync(
      pipeline,
      [
        `model: ${join(REPO_ROOT, 'models', 'demo')}`,
        'cameras:',
        '  ghost:',
        `    source: { type: rtsp, url: "rtsp://127.0.0.1:${await freePort()}/none", connect_timeout_s: 1,`,
        '              reconnect: { initial_s: 0.2, max_s: 0.5 } }',
        '  demo:',
        `    source: { type: file, path: ${CLIP}, loop: true, speed: 4 }`,
        '    sampling: { fps: 4 }',
        '    questions: [{ question: "what colour is the circle?", every_s: 1 }]',
        'watch:',
        '  folder: incoming',
        '  questions: ["what colour is the circle?", "how many shapes are there?"]',
        '  output: watch.jsonl',
        `answers: answers.jsonl`,
      ].join('\n'),
    );
    mkdirSync(incoming);
    writeFileSync(join(incoming, 'broken.mp4'), Buffer.alloc(3000, 1));
    const { child, log } = serve(pipeline);
    const exit = exitOf(child);
    await waitFor(() => /watching/.test(log()), 30_000, 'the watch to start');
    copyFileSync(CLIP, join(incoming, 'clip.mp4'));
    await waitFor(
      () => lines(join(dir, 'watch.jsonl')).filter((l) => l.clip === 'clip.mp4').length === 2,
      30_000,
      `the clip's answers (log: ${log()})`,
    );
    await waitFor(() => lines(join(dir, 'answers.jsonl')).length >= 1, 30_000, 'a standing answer');
    child.kill('SIGINT');
    assert.equal(await exit, 0, log());
    const watch = lines(join(dir, 'watch.jsonl'));
    const clip = watch.filter((l) => l.clip === 'clip.mp4');
    assert.deepEqual(
      clip.map((l) => l.question),
      ['what colour is the circle?', 'how many shapes are there?'],
    );
    assert.equal(clip[0].answer, 'purple');
    const broken = watch.filter((l) => l.clip === 'broken.mp4');
    assert.equal(broken.length, 2, 'the undecodable clip gets an error line per question');
    assert.ok(broken.every((l) => typeof l.error === 'string' && !l.answer));
    assert.match(log(), /ghost: source down: .*Connection refused.*; reconnecting in/);
    assert.equal(lines(join(dir, 'answers.jsonl'))[0].camera, 'demo');
  });

  it('a bad pipeline file is refused with the file and the key (exit 2)', () => {
    const pipeline = join(tempDir('serve3'), 'bad.yaml');
    writeFileSync(pipeline, 'cameras:\n  door:\n    source: { type: rtsp, url: "ftp://x" }\n');
    const r = spawnSync(process.execPath, [SIEVE, 'serve', '--pipeline', pipeline], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /bad\.yaml: cameras\.door\.source\.url: an rtsp:\/\/ or rtsps:\/\/ URL/);
  });
});

describe('sieve watch', { timeout: 60_000 }, () => {
  it('a standing question on a file played as a camera: --json lines with t and answer, ends with it', () => {
    const r = spawnSync(
      process.execPath,
      [SIEVE, 'watch', CLIP, 'what colour is the circle?', '--every', '500ms', '--speed', '2', '--fps', '4', '--json'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const answers = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(answers.length >= 2, r.stdout);
    for (const a of answers) {
      assert.equal(a.answer, 'purple');
      assert.equal(typeof a.t, 'number');
    }
    assert.ok(answers.at(-1).t >= 1.75, 'the last answer covers the end of the clip');
  });

  it('a bad --every is a usage error', () => {
    const r = spawnSync(process.execPath, [SIEVE, 'watch', CLIP, 'q?', '--every', 'often'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--every must be a duration such as 5s/);
  });
});

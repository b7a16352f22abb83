import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, tempDir } from '../helpers/fixtures.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt-client.js';
import { CLIP } from '../helpers/serve-daemon.js';

const SIEVE = join(REPO_ROOT, 'bin', 'sieve.js');
const QUESTION = 'what colour is the circle?';

/** `sieve serve` as its own process, pointed at a broker with --mqtt; stderr collected. */
function serve(pipeline: string, broker: string): { child: ChildProcess; log: () => string; exit: Promise<unknown> } {
  const child = spawn(process.execPath, [SIEVE, 'serve', '--pipeline', pipeline, '--mqtt', broker], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  return { child, log: () => log, exit };
}

const availability = (c: TestClient) => c.on('sieve/available').map((m) => m.payload.toString());

describe('sieve serve --mqtt on a real mosquitto', { timeout: 120_000 }, () => {
  let mosquitto: Mosquitto;
  let pipeline: string;
  const children: ChildProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    mosquitto = await Mosquitto.start();
    pipeline = join(tempDir('serve-mqtt'), 'p.yaml');
    writeFileSync(
      pipeline,
      [
        `model: ${join(REPO_ROOT, 'models', 'demo')}`,
        'cameras:',
        '  demo:',
        `    source: { type: file, path: ${CLIP}, loop: true, speed: 4 }`,
        '    sampling: { fps: 2 }',
        '    window: { seconds: 4, max_frames: 8 }',
        'queries: { capacity: 100 }',
        'mqtt: {}', // the embedded broker, but --mqtt gives the URL
      ].join('\n'),
    );
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(clients.map((c) => c.end()));
    await mosquitto?.kill();
  });

  const watcher = async () => {
    const c = await TestClient.connect(mosquitto.url);
    clients.push(c);
    await c.subscribe('sieve/available', 'sieve/demo/answer');
    return c;
  };
  const started = (c: TestClient, log: () => string) =>
    c.waitFor(() => availability(c).at(-1) === 'online', 60_000, `online (log: ${log()})`);

  it('killed with SIGKILL: the broker publishes its last will, offline, retained', async () => {
    const c = await watcher();
    const daemon = serve(pipeline, mosquitto.url);
    children.push(daemon.child);
    await started(c, daemon.log);
    assert.match(daemon.log(), /mqtt: connected to mqtt:\/\/127\.0\.0\.1:\d+ \(MQTT 5, prefix sieve\)/);
    await c.waitFor(() => /demo: source up/.test(daemon.log()), 30_000, 'frames');
    await new Promise((r) => setTimeout(r, 1000)); // a few frames in the window
    await c.publish('sieve/demo/query', JSON.stringify({ id: 'k1', question: QUESTION }));
    assert.equal((await c.reply('sieve/demo/answer', (j) => j.id === 'k1')).json.answer, 'purple');

    daemon.child.kill('SIGKILL');
    assert.equal(await daemon.exit, 'SIGKILL');
    await c.waitFor(() => availability(c).at(-1) === 'offline', 10_000, 'the last will');
    const late = await watcher();
    const kept = await late.waitFor(() => late.on('sieve/available')[0], 5000, 'the retained availability');
    assert.equal(kept.payload.toString(), 'offline');
    assert.equal(kept.retain, true);
  });

  it('SIGTERM: the running query is answered, the queued ones "shutting down", then offline; exit 0', async () => {
    const c = await watcher();
    const daemon = serve(pipeline, mosquitto.url);
    children.push(daemon.child);
    await started(c, daemon.log);
    await c.waitFor(() => /demo: source up/.test(daemon.log()), 30_000, 'frames');
    await new Promise((r) => setTimeout(r, 1000));
    const ids = Array.from({ length: 40 }, (_, i) => `t${i}`);
    await Promise.all(ids.map((id) => c.publish('sieve/demo/query', JSON.stringify({ id, question: QUESTION }))));
    const ours = () => c.on('sieve/demo/answer').filter((m) => ids.includes(m.json?.id));
    await c.waitFor(() => ours().length > 0, 20_000, 'a first answer');
    daemon.child.kill('SIGTERM');
    assert.equal(await daemon.exit, 0, daemon.log());
    await c.waitFor(() => availability(c).at(-1) === 'offline', 5000, 'offline');
    const replies = ours();
    assert.equal(replies.length, ids.length, 'one reply per query');
    assert.equal(new Set(replies.map((r) => r.json.id)).size, ids.length);
    const answered = replies.filter((r) => typeof r.json.answer === 'string');
    const refused = replies.filter((r) => r.json.code === 'shutting_down');
    assert.equal(answered.length + refused.length, ids.length, JSON.stringify(replies.map((r) => r.json)));
    assert.ok(answered.length > 0 && refused.length > 0, `${answered.length} answered, ${refused.length} refused`);
    assert.match(refused[0].json.error, /^shutting down: the query was not run$/);
    assert.match(daemon.log(), /SIGTERM received, stopping[\s\S]*mqtt: disconnected[\s\S]*sieve: stopped/);
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { IClientOptions } from 'mqtt';
import { Alerts } from '../../src/serve/alerts.js';
import type { Daemon } from '../../src/serve/daemon.js';
import { MqttSurface } from '../../src/serve/mqtt-surface.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { type Json, type Received, TestClient } from '../helpers/mqtt-client.js';
import { alternatingClip, CLIP, mqttConfig, startDaemon } from '../helpers/serve-daemon.js';

const QUESTION = 'what colour is the circle?';
const ALERT = 'sieve/ab/alerts/green_square';

/** Messages delivered live (not the retained copy a new subscription gets). */
const live = (messages: Received[]) => messages.filter((m) => !m.retain);

// One daemon for the file: camera demo (the quick-start clip) and camera ab (a clip with a green square for
// 2 s, then 2 s without), whose alert flips; a small queue so that a burst of queries meets a full one.
// Two surfaces on it: one on a real mosquitto (MQTT 5, Home Assistant discovery), one on the embedded aedes.
describe('MQTT surface: a real daemon on mosquitto and on the embedded broker', { timeout: 120_000 }, () => {
  let daemon: Daemon;
  let log: string[];
  let alerts: Alerts;
  let mosquitto: Mosquitto;
  let onMosquitto: MqttSurface;
  let embedded: MqttSurface;
  const clients: TestClient[] = [];
  const client = async (url: string, version: 4 | 5 = 5, more: IClientOptions = {}) => {
    const c = await TestClient.connect(url, version, more);
    clients.push(c);
    return c;
  };

  before(async () => {
    mosquitto = await Mosquitto.start();
    ({ daemon, log } = await startDaemon({
      cameras: {
        demo: {
          source: { type: 'file', path: CLIP, loop: true, speed: 4 },
          sampling: { fps: 2 }, // 8 frames a second to encode: few drops on a busy machine
          window: { seconds: 4, max_frames: 8 },
        },
        ab: {
          source: { type: 'file', path: await alternatingClip(), loop: true, speed: 2 },
          sampling: { fps: 4 },
          window: { seconds: 1.5, max_frames: 8 },
          alerts: [{ name: 'green_square', prompt: 'is there a green square in the clip?', every_s: 0.25 }],
        },
      },
      queries: { capacity: 4 },
    }));
    alerts = new Alerts(daemon);
    alerts.start();
    const options = { log: (line: string) => log.push(line), alerts, statusEveryMs: 1000 };
    onMosquitto = await MqttSurface.start(
      daemon,
      mqttConfig({ url: mosquitto.url, discovery: { enabled: true } }),
      options,
    );
    embedded = await MqttSurface.start(daemon, mqttConfig({ listen: '127.0.0.1:0' }), options);
    await Promise.all([onMosquitto.connected(), embedded.connected()]);
    // Both cameras have frames before the first query.
    const deadline = Date.now() + 30_000;
    while (daemon.status().some((s) => s.window.frames < 4) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.end()));
    alerts?.stop();
    await onMosquitto?.stop();
    await embedded?.stop();
    await daemon?.stop();
    await mosquitto?.kill();
  });

  it('mosquitto, MQTT 5: a query is answered on its response topic with its correlation data', async () => {
    assert.equal(onMosquitto.protocolVersion, 5);
    const c = await client(mosquitto.url);
    await c.subscribe('replies/#', 'sieve/demo/answer', 'sieve/demo/last_answer');
    const correlation = Buffer.from([0, 1, 2, 250]);
    await c.publish('sieve/demo/query', JSON.stringify({ id: 'q1', question: QUESTION, max_frames: 4 }), {
      qos: 1,
      properties: { responseTopic: 'replies/me', correlationData: correlation },
    });
    const reply = await c.reply('replies/me', (j) => j.id === 'q1');
    assert.deepEqual(reply.properties?.correlationData, correlation);
    assert.equal(reply.properties?.contentType, 'application/json');
    const a = reply.json;
    assert.equal(a.camera, 'demo');
    assert.equal(a.question, QUESTION);
    assert.equal(a.answer, 'purple');
    assert.ok(a.frames.length >= 1 && a.frames.length <= 4, JSON.stringify(a.frames));
    assert.ok(a.frames.every((f: Json) => typeof f.t === 'number' && typeof f.at === 'string'));
    assert.equal(a.method, 'none');
    assert.ok(a.tokens.prompt > 0 && a.tokens.visual_input === a.frames.length * 64 && a.tokens.stages);
    for (const stage of ['prefill', 'generate', 'first_token', 'queue', 'total']) {
      assert.equal(typeof a.latency_ms[stage], 'number', stage);
    }
    assert.ok(a.memory.peak_rss_bytes > 0 && a.memory.kv_reserved_bytes > 0);
    assert.equal(a.model, 'models/demo');

    // Without a response topic: on <prefix>/<camera>/answer; the last answer is kept, retained.
    await c.publish('sieve/demo/query', JSON.stringify({ id: 7, question: QUESTION, method: 'divprune' }));
    const plain = await c.reply('sieve/demo/answer', (j) => j.id === 7);
    assert.equal(plain.json.answer, 'purple');
    assert.equal(plain.json.method, 'divprune');
    assert.ok(plain.json.tokens.visual_input < plain.json.frames.length * 64, 'divprune at its default budget');
    const late = await client(mosquitto.url);
    await late.subscribe('sieve/demo/last_answer');
    const kept = await late.reply('sieve/demo/last_answer', (j) => j.id === 7);
    assert.equal(kept.retain, true);
  });

  it('mosquitto: bad input gets an error reply naming the problem, and the daemon keeps answering', async () => {
    const c = await client(mosquitto.url);
    await c.subscribe('sieve/+/answer');
    const cases: [string, string | Buffer, RegExp, string][] = [
      ['demo', '{not json', /^the payload is not valid JSON/, 'bad_request'],
      ['demo', Buffer.from([0xff, 0xfe, 0x00, 0x9f]), /not UTF-8 text/, 'bad_request'],
      ['demo', '[1, 2]', /must be a JSON object .* not an array/, 'bad_request'],
      ['demo', '{"id": "e1"}', /^question is missing$/, 'bad_request'],
      ['demo', '{"id": "e2", "question": "   "}', /^the question is empty$/, 'bad_request'],
      ['demo', '{"id": "e3", "question": 42}', /^question must be a string, not the number 42$/, 'bad_request'],
      ['nope', '{"id": "e4", "question": "q?"}', /^unknown camera "nope"$/, 'unknown_camera'],
      [
        'demo',
        Buffer.alloc(100 * 1024, 0x20),
        /^the payload is 102400 bytes, over the limit of 65536 \(64 KiB\)$/,
        'too_large',
      ],
      ['demo', '{"id": "e5", "question": "q?", "method": "magic"}', /^unknown pruning method "magic"$/, 'bad_request'],
      ['demo', '{"id": "e6", "question": "q?", "budget": 0}', /^budget must be more than 0$/, 'bad_request'],
      ['demo', '{"id": "e7", "question": "q?", "budget": "half"}', /^budget must be a number/, 'bad_request'],
      ['demo', '{"id": "e8", "question": "q?", "window": 3}', /^unknown key "window"$/, 'bad_request'],
      // 4,000 tokens (the word-level tokenizer splits 'a' from '?'): with the window's frames, more than 4,096.
      ['demo', JSON.stringify({ id: 'e9', question: 'a?'.repeat(2000) }), /too long for this model/, 'bad_request'],
    ];
    for (const [camera, payload, error, code] of cases) {
      const before = c.messages.length;
      await c.publish(`sieve/${camera}/query`, payload);
      const reply = await c.waitFor(() => c.messages[before], 10_000, `the reply to ${String(payload).slice(0, 40)}`);
      assert.equal(reply.topic, `sieve/${camera}/answer`);
      assert.match(reply.json.error, error);
      assert.equal(reply.json.code, code, reply.json.error);
      assert.equal(reply.json.camera, camera);
      assert.ok(reply.json.hint, `a hint for ${reply.json.error}`);
      assert.equal(reply.json.id, /"id": ?"(e\d+)"/.exec(String(payload))?.[1] ?? null, 'the id when it can be read');
    }
    assert.match(c.messages[6].json.hint, /cameras: demo, ab/);
    assert.match(c.messages[8].json.hint, /valid methods: none, .*vitcop/);
    await c.publish('sieve/demo/query', JSON.stringify({ id: 'after', question: QUESTION }));
    assert.equal((await c.reply('sieve/demo/answer', (j) => j.id === 'after')).json.answer, 'purple');
  });

  it('a burst beyond the queue: every query gets exactly one reply, the extra ones "busy" at once', async () => {
    const c = await client(mosquitto.url);
    await c.subscribe('sieve/demo/answer');
    const ids = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    await Promise.all(ids.map((id) => c.publish('sieve/demo/query', JSON.stringify({ id, question: QUESTION }))));
    const replies = await c.waitFor(
      () => {
        const r = c.messages.filter((m) => ids.includes(m.json?.id));
        return r.length >= ids.length && r;
      },
      30_000,
      'a reply to each query of the burst',
    );
    await new Promise((r) => setTimeout(r, 300)); // no second reply comes
    assert.equal(c.messages.filter((m) => ids.includes(m.json?.id)).length, ids.length);
    assert.deepEqual(new Set(replies.map((r) => r.json.id)).size, ids.length);
    const busy = replies.filter((r) => r.json.code === 'busy');
    const answered = replies.filter((r) => typeof r.json.answer === 'string');
    assert.equal(busy.length + answered.length, ids.length, JSON.stringify(replies.map((r) => r.json)));
    assert.ok(busy.length > 0 && answered.length > 0, `${busy.length} busy, ${answered.length} answered`);
    assert.match(busy[0].json.error, /^busy: \d+ queries are waiting$/);
    assert.ok(busy[0].json.retry_after_s >= 1);
  });

  it('availability, status and stats; Home Assistant discovery for the alerts and the last answer', async () => {
    const c = await client(mosquitto.url);
    await c.subscribe('sieve/available', 'sieve/+/status', 'sieve/stats', 'homeassistant/#');
    const online = await c.waitFor(() => c.on('sieve/available')[0], 5000, 'availability');
    assert.equal(online.payload.toString(), 'online');
    assert.equal(online.retain, true);
    const status = await c.reply('sieve/demo/status', (j) => j.state === 'live');
    assert.equal(status.json.camera, 'demo');
    assert.ok(status.json.frames.encoded > 0 && status.json.window.frames > 0);
    const abStatus = await c.reply('sieve/ab/status', () => true);
    assert.ok(Object.hasOwn(abStatus.json.alerts, 'green_square'));
    const stats = await c.reply('sieve/stats', (j) => j.mqtt.received > 0, 5000);
    assert.ok(stats.json.queries.accepted > 0 && stats.json.queries.busy > 0 && stats.json.alerts.evaluated >= 0);
    assert.ok(stats.json.mqtt.answered > 0 && stats.json.mqtt.errors.bad_request > 0);

    const sensor = await c.waitFor(
      () => c.on('homeassistant/binary_sensor/sieve_ab_green_square/config')[0],
      5000,
      'the binary_sensor config',
    );
    assert.equal(sensor.retain, true);
    assert.equal(sensor.json.unique_id, 'sieve_ab_green_square');
    assert.equal(sensor.json.state_topic, ALERT);
    assert.equal(sensor.json.availability_topic, 'sieve/available');
    assert.deepEqual(sensor.json.device.identifiers, ['sieve_ab']);
    const answer = c.on('homeassistant/sensor/sieve_demo_answer/config')[0];
    assert.equal(answer.json.state_topic, 'sieve/demo/last_answer');
    assert.equal(answer.json.value_template, '{{ value_json.answer }}');
    assert.ok(c.on('homeassistant/sensor/sieve_ab_answer/config')[0]);
    assert.equal(c.messages.filter((m) => m.topic.startsWith('homeassistant/')).length, 3);
  });

  it('alerts: evaluated on new frames, published retained only when the state changes', async () => {
    const c = await client(mosquitto.url);
    await c.subscribe(ALERT);
    const start = alerts.stats();
    const changes = await c.waitFor(
      () => live(c.on(ALERT)).length >= 3 && live(c.on(ALERT)),
      20_000,
      'three changes of the alert',
    );
    const end = alerts.stats();
    const states = changes.map((m) => m.json.state);
    for (let i = 1; i < states.length; i++) assert.notEqual(states[i], states[i - 1], states.join(' → '));
    assert.ok(
      states.every((s) => s === 'yes' || s === 'no'),
      states.join(' → '),
    );
    assert.ok(
      end.evaluated - start.evaluated > end.changed - start.changed,
      `more evaluations than changes: ${JSON.stringify({ start, end })}`,
    );
    assert.ok(end.changed - start.changed >= changes.length);
    const first = changes[0].json;
    assert.equal(first.camera, 'ab');
    assert.equal(first.alert, 'green_square');
    assert.equal(first.prompt, 'is there a green square in the clip?');
    assert.ok(first.frames.length > 0 && first.answer);
    // A new subscriber gets the current state, retained.
    const late = await client(mosquitto.url);
    await late.subscribe(ALERT);
    const kept = await late.waitFor(() => late.on(ALERT)[0], 5000, 'the retained alert');
    assert.equal(kept.retain, true);
    assert.equal(kept.json.state, alerts.states().find((s) => s.alert === 'green_square')?.state);
  });

  it('the embedded aedes broker (MQTT 3.1.1): query → answer by id, error replies, online and alerts retained', async () => {
    assert.equal(embedded.protocolVersion, 4);
    assert.match(embedded.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
    const c = await client(embedded.url, 4);
    await c.subscribe('sieve/available', 'sieve/+/answer', ALERT);
    await c.publish('sieve/demo/query', JSON.stringify({ id: 'a1', question: QUESTION, window_s: 1 }));
    const reply = await c.reply('sieve/demo/answer', (j) => j.id === 'a1');
    assert.equal(reply.json.answer, 'purple');
    assert.ok(reply.json.frames.length <= 5, 'one second of a 4 fps window');
    await c.publish('sieve/demo/query', '{"id": "a2", "question": "q?", "max_frames": 0}');
    assert.match(
      (await c.reply('sieve/demo/answer', (j) => j.id === 'a2')).json.error,
      /max_frames must be at least 1/,
    );
    const online = c.on('sieve/available')[0];
    assert.equal(online?.payload.toString(), 'online');
    assert.equal(online.retain, true);
    const alert = await c.waitFor(() => c.on(ALERT)[0], 10_000, 'the alert state');
    assert.ok(['yes', 'no'].includes(alert.json.state));
  });

  it('a broker URL that speaks MQTT 3.1.1 only (aedes): the surface falls back from MQTT 5', async () => {
    const lines: string[] = [];
    const c = await client(embedded.url, 4);
    await c.subscribe('other/demo/answer');
    // A query left retained on the broker is not answered again by every new subscription.
    await c.publish('other/demo/query', JSON.stringify({ id: 'stale', question: QUESTION }), { qos: 1, retain: true });
    const other = await MqttSurface.start(daemon, mqttConfig({ url: embedded.url, prefix: 'other' }), {
      log: (line) => lines.push(line),
    });
    try {
      await other.connected();
      assert.equal(other.protocolVersion, 4);
      assert.match(lines.join('\n'), /does not speak MQTT 5; using MQTT 3\.1\.1/);
      await c.publish('other/demo/query', JSON.stringify({ id: 'o1', question: QUESTION }));
      assert.equal((await c.reply('other/demo/answer', (j) => j.id === 'o1')).json.answer, 'purple');
      assert.equal(c.messages.filter((m) => m.json?.id === 'stale').length, 0);
      assert.match(lines.join('\n'), /a retained query on other\/demo\/query ignored/);
      await c.publish('other/demo/query', '', { qos: 1, retain: true }); // cleared
    } finally {
      await other.stop();
    }
  });

  it('credentials and TLS from the config: a broker with a password file, a TLS-only broker', async () => {
    const locked = await Mosquitto.start({ users: [{ username: 'sieve', password: 's3cret' }] });
    const secure = await Mosquitto.start({ tls: true });
    const lines: string[] = [];
    const options = { log: (line: string) => lines.push(line) };
    const surfaces: MqttSurface[] = [];
    const start = async (config: Record<string, unknown>) => {
      const s = await MqttSurface.start(daemon, mqttConfig(config), options);
      surfaces.push(s);
      return s;
    };
    const ask = async (c: TestClient, id: string) => {
      await c.subscribe('sieve/demo/answer');
      await c.publish('sieve/demo/query', JSON.stringify({ id, question: QUESTION }));
      return (await c.reply('sieve/demo/answer', (j) => j.id === id)).json.answer;
    };
    try {
      await start({ url: locked.url, username: 'sieve', password: 'wrong', prefix: 'nope' });
      await start({ url: secure.url, prefix: 'nope', tls: {} }); // the test CA is not trusted
      const deadline = Date.now() + 10_000;
      const logged = () => lines.join('\n');
      while (!/CA certificate/.test(logged()) || !/check mqtt\.username/.test(logged())) {
        assert.ok(Date.now() < deadline, logged());
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(logged(), /mqtt: mqtt:\/\/127\.0\.0\.1:\d+: .*(Not authorized|Bad User Name).*check mqtt\.username/);
      assert.match(logged(), /mqtts:\/\/127\.0\.0\.1:\d+: self-signed certificate.*mqtt\.tls\.ca/);

      await (await start({ url: locked.url, username: 'sieve', password: 's3cret' })).connected();
      const user = await client(locked.url, 5, { username: 'sieve', password: 's3cret' });
      assert.equal(await ask(user, 'auth-1'), 'purple');

      assert.ok(secure.caFile);
      await (await start({ url: secure.url, tls: { ca: secure.caFile } })).connected();
      const tls = await client(secure.url, 5, { ca: readFileSync(secure.caFile) });
      assert.equal(await ask(tls, 'tls-1'), 'purple');
    } finally {
      await Promise.all(surfaces.map((s) => s.stop()));
      await locked.kill();
      await secure.kill();
    }
  });

  it('mosquitto restarted: the daemon reconnects, says online again, and answers the next query', async () => {
    await mosquitto.kill();
    const deadline = Date.now() + 5000;
    while (onMosquitto.stats().connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(onMosquitto.stats().connected, false);
    await mosquitto.resume();
    const c = await client(mosquitto.url);
    await c.subscribe('sieve/available', 'sieve/demo/answer', ALERT);
    // The new broker has no retained messages of its own (no persistence): these come from the daemon.
    await c.waitFor(() => c.on('sieve/available').some((m) => m.payload.toString() === 'online'), 10_000, 'online');
    await c.publish('sieve/demo/query', JSON.stringify({ id: 'r1', question: QUESTION }));
    assert.equal((await c.reply('sieve/demo/answer', (j) => j.id === 'r1')).json.answer, 'purple');
    assert.ok(await c.waitFor(() => c.on(ALERT)[0], 5000, 'the alert state again'));
    assert.ok(onMosquitto.stats().reconnects >= 1);
    assert.match(log.join('\n'), /mqtt: connection to mqtt:\/\/127\.0\.0\.1:\d+ lost; reconnecting/);
    assert.match(log.join('\n'), /mqtt: reconnected to/);
  });
});

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Alerts } from '../../src/serve/alerts.js';
import type { Daemon } from '../../src/serve/daemon.js';
import { MqttSurface } from '../../src/serve/mqtt-surface.js';
import { TestClient } from '../helpers/mqtt-client.js';
import { CLIP, mqttConfig, startDaemon } from '../helpers/serve-daemon.js';

const MESSAGES = 1200;
const SEED = 20_261_129;

/** mulberry32: a small seeded PRNG, so that a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Sent {
  topic: string;
  payload: Buffer;
  kind: string;
  /** The id of a well-formed query, which must be answered. */
  ok?: string;
}

/** The fuzz corpus: well-formed queries among broken JSON, binary garbage, wrong types, unknown cameras, … */
function corpus(random: () => number): Sent[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(0, 255)));
  const questions = [
    'what colour is the circle?',
    'what shape is the red object?',
    'where is the red object?',
    'how many large objects appear in the clip?',
    'is there a red square in the clip?',
    'which way does the purple object move?',
  ];
  const valid = (id: string): Record<string, unknown> => {
    const q: Record<string, unknown> = { id, question: pick(questions) };
    if (random() < 0.3) q.window_s = Math.round((0.5 + random() * 4) * 100) / 100;
    if (random() < 0.3) q.max_frames = int(1, 8);
    const method = random() < 0.4 ? pick(['none', 'divprune', 'vitcop', 'pool']) : undefined;
    if (method) q.method = method;
    if (method === 'divprune' && random() < 0.5) q.budget = pick([0.25, 0.5, 1]);
    return q;
  };
  const wrong: [string, unknown][] = [
    ['question', 42],
    ['question', null],
    ['question', ['what?']],
    ['question', { text: 'what?' }],
    ['question', ''],
    ['question', ' \n\t '],
    ['question', 'x'.repeat(5000)],
    ['question', 'a?'.repeat(2030)], // fits the size limit (4,060 characters), not the context (4,060 tokens)
    ['window_s', 'ten'],
    ['window_s', -1],
    ['window_s', 0],
    ['max_frames', 0],
    ['max_frames', 1.5],
    ['max_frames', '4'],
    ['max_frames', 100_000],
    ['method', 5],
    ['method', 'bogus'],
    ['method', ''],
    ['budget', -1],
    ['budget', 2],
    ['budget', 'half'],
    ['budget', 0],
    ['id', { nested: true }],
    ['id', [1]],
    ['id', true],
    ['id', 'i'.repeat(300)],
    ['extra', 1],
  ];
  const cameras = ['nope', 'DEMO', 'demo2', 'dé', 'a b', '', '0', 'x'.repeat(200)];
  const sent: Sent[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const r = random();
    const json = (v: unknown, kind: string, topic = 'sieve/demo/query', ok?: string) =>
      sent.push({ topic, payload: Buffer.from(JSON.stringify(v)), kind, ...(ok ? { ok } : {}) });
    if (r < 0.2) json(valid(`ok-${i}`), 'valid', 'sieve/demo/query', `ok-${i}`);
    else if (r < 0.35) {
      // Each of these breaks any JSON object: cut short, trailing garbage, = for :, single quotes, a quote gone.
      const text = JSON.stringify(valid(`bad-${i}`));
      const quote = pick([...text.matchAll(/"/g)].map((m) => m.index));
      const broken = pick([
        () => text.slice(0, int(0, text.length - 2)),
        () => `${text}${pick(['x', '}', ',', ' 1', '{}'])}`,
        () => text.replace(':', '='),
        () => text.replaceAll('"', "'"),
        () => `${text.slice(0, quote)}${text.slice(quote + 1)}`,
      ])();
      sent.push({ topic: 'sieve/demo/query', payload: Buffer.from(broken), kind: 'broken json' });
    } else if (r < 0.5) sent.push({ topic: 'sieve/demo/query', payload: bytes(int(1, 2000)), kind: 'binary' });
    else if (r < 0.68) {
      const [key, value] = pick(wrong);
      json({ ...valid(`bad-${i}`), [key]: value }, `wrong ${key}`);
    } else if (r < 0.78) json(valid(`bad-${i}`), 'unknown camera', `sieve/${pick(cameras)}/query`);
    else if (r < 0.81) {
      const size = int(64 * 1024 + 1, 1024 * 1024);
      const payload =
        random() < 0.5 ? bytes(size) : Buffer.from(JSON.stringify({ id: `bad-${i}`, question: 'q'.repeat(size) }));
      sent.push({ topic: 'sieve/demo/query', payload, kind: 'huge' });
    } else if (r < 0.9) json(pick([42, 'what colour?', [1, 2], null, true, [], -0.5, '']), 'not an object');
    else if (r < 0.95) sent.push({ topic: 'sieve/demo/query', payload: Buffer.alloc(0), kind: 'empty' });
    else {
      const text = JSON.stringify(valid(`bad-${i}`));
      sent.push({
        topic: 'sieve/demo/query',
        payload: Buffer.from(`\uFEFF${text}${pick(['x', '}', ' []'])}`),
        kind: 'odd',
      });
    }
  }
  return sent;
}

describe('MQTT fuzz: 1,200 random and malformed payloads on a real daemon', { timeout: 180_000 }, () => {
  let daemon: Daemon;
  let alerts: Alerts;
  let surface: MqttSurface;
  let c: TestClient;

  before(async () => {
    ({ daemon } = await startDaemon({
      cameras: {
        demo: {
          source: { type: 'file', path: CLIP, loop: true, speed: 4 },
          sampling: { fps: 2 },
          window: { seconds: 4, max_frames: 8 },
          pruning: { method: 'vitcop' },
          alerts: [{ name: 'purple_circle', prompt: 'is there a purple circle in the clip?', every_s: 0.5 }],
        },
      },
      // Room for every well-formed query: the point is that each is answered (a full queue is tested elsewhere).
      queries: { capacity: MESSAGES, deadline_s: 170 },
    }));
    alerts = new Alerts(daemon);
    alerts.start();
    surface = await MqttSurface.start(daemon, mqttConfig({ listen: '127.0.0.1:0' }), { log: () => undefined, alerts });
    await surface.connected();
    c = await TestClient.connect(surface.url, 4);
    await c.subscribe('sieve/+/answer');
    const deadline = Date.now() + 30_000;
    while ((daemon.status()[0]?.window.frames ?? 0) < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    await c?.end();
    alerts?.stop();
    await surface?.stop();
    await daemon?.stop();
  });

  it('every message gets exactly one reply; every well-formed query an answer; the daemon stays up', async () => {
    const sent = corpus(prng(SEED));
    const wellFormed = sent.filter((s) => s.ok).map((s) => s.ok as string);
    const count = new Map<string, number>();
    for (const s of sent) count.set(s.kind, (count.get(s.kind) ?? 0) + 1);
    const kinds = [...count].map(([k, n]) => `${k} ${n}`);
    assert.ok(sent.length >= 1000 && wellFormed.length >= 150, kinds.join(', '));
    const started = performance.now();
    for (const s of sent) await c.publish(s.topic, s.payload, { qos: 1 });
    await c.waitFor(() => c.messages.length >= sent.length, 150_000, `${sent.length} replies (${kinds.join(', ')})`);
    await new Promise((r) => setTimeout(r, 500)); // no reply comes twice
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    assert.equal(c.messages.length, sent.length, 'one reply per message');

    const replies = c.messages.map((m) => m.json);
    assert.ok(
      replies.every((r) => r && typeof r === 'object'),
      'every reply is a JSON object',
    );
    for (const id of wellFormed) {
      const mine = replies.filter((r) => r.id === id);
      assert.equal(mine.length, 1, `one reply to ${id}`);
      assert.equal(typeof mine[0].answer, 'string', `${id} answered: ${JSON.stringify(mine[0])}`);
    }
    const errors = replies.filter((r) => !(typeof r.id === 'string' && r.id.startsWith('ok-')));
    assert.equal(errors.length, sent.length - wellFormed.length);
    for (const e of errors) {
      assert.equal(typeof e.error, 'string', JSON.stringify(e));
      assert.ok(
        ['bad_request', 'too_large', 'unknown_camera'].includes(e.code),
        `a named problem: ${JSON.stringify(e)}`,
      );
      assert.equal(e.answer, undefined);
    }
    const unknown = sent.filter((s) => s.kind === 'unknown camera').length;
    assert.equal(errors.filter((e) => e.code === 'unknown_camera').length, unknown);
    assert.equal(errors.filter((e) => e.code === 'too_large').length, sent.filter((s) => s.kind === 'huge').length);
    assert.equal(surface.stats().received, sent.length);
    console.log(`# fuzz: ${sent.length} messages (${kinds.join(', ')}), all replied in ${seconds} s`);

    // Still serving: a plain query, and the alert evaluated.
    await c.publish('sieve/demo/query', JSON.stringify({ id: 'after', question: 'what colour is the circle?' }));
    assert.equal((await c.reply('sieve/demo/answer', (j) => j.id === 'after')).json.answer, 'purple');
    assert.ok(alerts.stats().evaluated > 0);
  });

  it('raw TCP garbage at the embedded broker: it drops those connections and goes on serving', async () => {
    const port = Number(new URL(surface.url).port);
    const random = prng(SEED + 1);
    await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect(port, '127.0.0.1', () => {
              socket.end(Buffer.from(Array.from({ length: 1 + Math.floor(random() * 4000) }, () => random() * 256)));
            });
            socket.on('error', () => resolve());
            socket.on('close', () => resolve());
            socket.resume();
          }),
      ),
    );
    await c.publish('sieve/demo/query', JSON.stringify({ id: 'after-tcp', question: 'what colour is the circle?' }));
    assert.equal((await c.reply('sieve/demo/answer', (j) => j.id === 'after-tcp')).json.answer, 'purple');
    assert.equal(surface.stats().connected, true);
  });
});

import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Prng } from '../../src/synth/prng.js';
import { demoFrames, type HttpDaemon, startHttpDaemon } from '../helpers/http-daemon.js';

const QUESTION = 'what colour is the circle?';
const LIMIT = 2 ** 20;

interface Sent {
  kind: string;
  /** A well-formed query: it must be answered (200). */
  valid: boolean;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

function send(url: string, s: Sent): Promise<Reply> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, method: s.method, path: s.path, headers: s.headers, agent, timeout: 60_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no reply within 60 s')));
    req.on('error', reject);
    req.end(s.body);
  });
}

/** Random bytes at the HTTP level (not even a request line): a 400 or a closed socket, never a crash. */
function sendRaw(url: string, bytes: Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => socket.end(bytes));
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  });
}

/** A seeded stream of requests: random bytes, broken JSON, wrong types, huge bodies, bad paths and methods,
 * semantic mistakes, and well-formed questions about the camera and about images mixed in. */
function* requests(rng: Prng, count: number, dataUrls: readonly string[]): Generator<Sent | { raw: Buffer }> {
  const json = { 'content-type': 'application/json' };
  const chat = '/v1/chat/completions';
  const good = () => ({
    model: 'demo',
    messages: [{ role: 'user', content: QUESTION }],
    max_tokens: 4,
    sieve: { camera: 'demo' } as Record<string, unknown>,
  });
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rng.int(0, 255)));
  const junk = (): unknown =>
    rng.pick<() => unknown>([
      () => null,
      () => rng.bool(),
      () => rng.int(-5, 5),
      () => rng.next() * 1e6 - 5e5,
      () => -1,
      () => 1.5,
      () => 4097,
      () => '',
      () => 'x'.repeat(rng.int(1, 50)),
      () => '😀\u0000\ud800',
      () => [],
      () => [1, 'two', null],
      () => ({}),
      () => ({ nested: { deeper: [{}] } }),
      () => bytes(rng.int(1, 30)).toString('latin1'),
    ])();
  const mutate = (body: Record<string, unknown>) => {
    const b = structuredClone(body) as Record<string, unknown> & {
      messages: Record<string, unknown>[];
      sieve: Record<string, unknown>;
    };
    const targets: [Record<string, unknown>, string][] = [
      [b, 'model'],
      [b, 'messages'],
      [b, 'max_tokens'],
      [b, 'temperature'],
      [b, 'top_p'],
      [b, 'seed'],
      [b, 'stream'],
      [b, 'stream_options'],
      [b, 'n'],
      [b, 'sieve'],
      [b.messages[0], 'role'],
      [b.messages[0], 'content'],
      [b.sieve, 'camera'],
      [b.sieve, 'window_s'],
      [b.sieve, 'max_frames'],
      [b.sieve, 'method'],
      [b.sieve, 'budget'],
      [b.sieve, 'deadline_s'],
    ];
    const [target, key] = rng.pick(targets);
    if (rng.bool(0.15)) delete target[key];
    else target[key] = junk();
    return b;
  };
  for (let i = 0; i < count; i++) {
    const r = rng.next();
    const post = (kind: string, body: Buffer, valid = false, headers: Record<string, string> = json): Sent => ({
      kind,
      valid,
      method: 'POST',
      path: chat,
      headers,
      body,
    });
    if (r < 0.07) yield post('valid camera', Buffer.from(JSON.stringify(good())), true);
    else if (r < 0.1) yield post('valid stream', Buffer.from(JSON.stringify({ ...good(), stream: true })), true);
    else if (r < 0.12) {
      const images = rng.sample(dataUrls, rng.int(1, 2)).map((url) => ({ type: 'image_url', image_url: { url } }));
      const body = { messages: [{ role: 'user', content: [...images, { type: 'text', text: QUESTION }] }] };
      yield post('valid images', Buffer.from(JSON.stringify({ ...body, max_tokens: 4 })), true);
    } else if (r < 0.24) yield post('random bytes', bytes(rng.int(0, 4096)));
    else if (r < 0.28) {
      const type = rng.pick(['application/octet-stream', 'text/plain', 'multipart/form-data; boundary=x', 'image/png']);
      yield post('random bytes, other type', bytes(rng.int(0, 2048)), false, { 'content-type': type });
    } else if (r < 0.43) {
      const text = JSON.stringify(rng.bool() ? good() : { ...good(), stream: true });
      const cut = rng.int(0, text.length - 1);
      const broken = rng.bool()
        ? text.slice(0, cut)
        : `${text.slice(0, cut)}${rng.pick(['"', '{', ']', ',', '\\', ':', '\u0000'])}${text.slice(cut + 1)}`;
      yield post('broken JSON', Buffer.from(broken));
    } else if (r < 0.68) yield post('wrong types', Buffer.from(JSON.stringify(mutate(good()))));
    else if (r < 0.73) {
      const value = rng.pick<unknown>([null, 42, 'question', [good()], [], true, { messages: 'what?' }]);
      yield post('other JSON', Buffer.from(JSON.stringify(value)));
    } else if (r < 0.74) {
      const size = rng.int(LIMIT + 1, 3 * LIMIT);
      const body = Buffer.alloc(size, 0x20);
      Buffer.from(JSON.stringify(good()).slice(0, -1)).copy(body);
      yield post('huge body', body);
    } else if (r < 0.86) {
      const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789/._~-%?=&';
      const random = Array.from({ length: rng.int(1, 40) }, () => rng.pick([...alphabet])).join('');
      const path = rng.pick([
        `/${random}`,
        '/v1/chat/completions/extra',
        '/v1/models/unknown-model',
        '/v1/models/%zz',
        '/v1//chat/completions',
        '/../../etc/passwd',
        '/metrics?x=1',
        chat,
        '/health',
        '/v1/models',
      ]);
      const method = rng.pick(['GET', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'POST', 'FOO']);
      const body = method === 'GET' || method === 'HEAD' ? undefined : bytes(rng.int(0, 200));
      yield { kind: 'path/method', valid: false, method, path, headers: {}, body };
    } else if (r < 0.98) {
      const b = good();
      const semantic = rng.pick<() => unknown>([
        () => ({ ...b, sieve: { camera: rng.pick(['door', 'DEMO', '', 'demo ', '../demo']) } }),
        () => ({ ...b, sieve: { camera: 'demo', method: rng.pick(['magic', 'VITCOP', 'none ', '']) } }),
        () => ({ ...b, sieve: { camera: 'demo', budget: rng.pick([0, -0.5, 2, 1e-9]) } }),
        () => ({ ...b, messages: [{ role: 'user', content: 'why? '.repeat(rng.int(500, 3000)) }] }),
        () => ({ ...b, messages: [{ role: 'user', content: rng.pick(['', '   ', '\n\t']) }] }),
        () => ({ ...b, model: rng.pick(['gpt-4o', 'demo2', '']) }),
        () => ({ ...b, messages: [{ role: 'assistant', content: QUESTION }] }),
        () => {
          const url = rng.pick([
            `data:image/png;base64,${bytes(rng.int(1, 300)).toString('base64')}`,
            'data:image/png;base64,!!!!',
            'data:image/png,rawtext',
            'http://127.0.0.1:1/x.png',
            'file:///etc/passwd',
            `data:image/png;base64,${dataUrls[0].split(',')[1].slice(0, rng.int(4, 200))}`,
          ]);
          return { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, QUESTION] }] };
        },
      ]);
      yield post('semantic', Buffer.from(JSON.stringify(semantic())));
    } else yield { raw: bytes(rng.int(1, 300)) };
  }
}

describe('HTTP API fuzz', { timeout: 180_000 }, () => {
  let d: HttpDaemon;
  let dataUrls: string[];

  before(async () => {
    d = await startHttpDaemon({ maxBodyBytes: LIMIT });
    ({ dataUrls } = await demoFrames(3));
  });
  after(async () => {
    agent.destroy();
    await d?.stop();
  });

  it('1,200 random and malformed requests: the daemon stays up, every well-formed query gets one 200 answer', async () => {
    const rng = new Prng(20261129);
    const all = [...requests(rng, 1200, dataUrls)];
    const tally = new Map<string, number>();
    const failures: string[] = [];
    let valid = 0;
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < all.length; i = next++) {
        const item = all[i];
        if ('raw' in item) {
          const got = await sendRaw(d.url, item.raw);
          if (got !== '' && !got.startsWith('HTTP/1.1 400')) failures.push(`raw #${i}: ${got.slice(0, 80)}`);
          continue;
        }
        let reply: Reply;
        try {
          reply = await send(d.url, item);
        } catch (err) {
          failures.push(`#${i} ${item.kind}: no reply (${(err as Error).message})`);
          continue;
        }
        const key = `${item.kind} → ${reply.status}`;
        tally.set(key, (tally.get(key) ?? 0) + 1);
        const what = `#${i} ${item.kind} ${item.method} ${item.path}: ${reply.status} ${reply.body.slice(0, 300)}`;
        if (item.valid) {
          valid++;
          if (reply.status !== 200) failures.push(`well-formed ${what}`);
          else if (item.kind === 'valid stream') {
            if (!reply.body.endsWith('data: [DONE]\n\n') || !reply.body.includes('"finish_reason":"stop"'))
              failures.push(`stream ${what}`);
          } else if (!JSON.parse(reply.body).choices[0].message.content) failures.push(`answer ${what}`);
          continue;
        }
        if (reply.status >= 500) failures.push(`server error ${what}`);
        if (reply.status === 200 || item.method === 'HEAD') continue; // a mutation that stayed valid; no body
        if (item.method === 'FOO') {
          if (reply.status !== 400) failures.push(what);
          continue;
        }
        try {
          const error = JSON.parse(reply.body).error;
          const shape = Object.keys(error).sort().join(',') === 'code,message,param,type';
          if (!shape || typeof error.message !== 'string' || error.message.length < 10) failures.push(`shape ${what}`);
        } catch {
          failures.push(`not JSON ${what}`);
        }
        if (![400, 404, 405, 413, 415].includes(reply.status)) failures.push(`status ${what}`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);

    const summary = [...tally.entries()].sort().map(([k, n]) => `${k}: ${n}`);
    assert.deepEqual(failures, [], summary.join('\n'));
    assert.ok(all.length >= 1000);
    assert.ok(valid >= 100, `${valid} well-formed queries among them`);
    for (const kind of ['random bytes', 'broken JSON', 'wrong types', 'huge body', 'path/method', 'semantic']) {
      assert.ok(
        summary.some((line) => line.startsWith(kind)),
        `${kind} was tried: ${summary.join('; ')}`,
      );
    }
    assert.ok((tally.get('huge body → 413') ?? 0) >= 5, summary.join('\n'));

    // Still serving, and the scheduler settled everything it accepted.
    const health = await fetch(`${d.url}/health`);
    assert.equal(health.status, 200);
    const stats = d.daemon.scheduler.stats();
    assert.equal(stats.depth + stats.running, 0);
    assert.equal(stats.accepted, stats.completed + stats.failed);
    assert.ok(stats.completed >= valid);
    const res = await fetch(`${d.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: QUESTION }], sieve: { camera: 'demo' } }),
    });
    assert.equal(
      ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content,
      'purple',
    );
  });
});

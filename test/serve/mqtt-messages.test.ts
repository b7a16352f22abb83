import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { alertState } from '../../src/serve/alerts.js';
import { parseBrokerListen } from '../../src/serve/embedded-broker.js';
import { errorReply, MAX_PAYLOAD_BYTES, parseQuery } from '../../src/serve/mqtt-messages.js';
import { BusyError, DeadlineError, ShuttingDownError } from '../../src/serve/query-scheduler.js';

const CAMERAS = ['demo', 'door'];
const parse = (payload: string | Buffer, camera = 'demo') =>
  parseQuery(typeof payload === 'string' ? Buffer.from(payload) : payload, camera, CAMERAS);
const refusal = (payload: string | Buffer, camera = 'demo') => {
  const parsed = parse(payload, camera);
  assert.equal(parsed.ok, false, `refused: ${String(payload).slice(0, 60)}`);
  return parsed.ok ? assert.fail() : parsed.reply;
};

describe('MQTT query payloads', () => {
  it('a query: keys in snake case become the window query; id a string, a number or absent', () => {
    assert.deepEqual(parse('{"id": "a", "question": " what? ", "window_s": 2.5, "max_frames": 4}'), {
      ok: true,
      id: 'a',
      query: { question: 'what?', windowS: 2.5, maxFrames: 4 },
    });
    assert.deepEqual(parse('{"id": 3, "question": "q", "method": "vitcop", "budget": 0.2}'), {
      ok: true,
      id: 3,
      query: { question: 'q', method: 'vitcop', budget: 0.2 },
    });
    const noId = parse('{"question": "q"}');
    assert.ok(noId.ok && noId.id === null);
  });

  it('each problem is named, with the id when it could be read, in the order size, text, JSON, camera, keys', () => {
    const cases: [string | Buffer, string, RegExp, string | null][] = [
      [
        Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x7b),
        'too_large',
        /^the payload is 65537 bytes, over the limit of 65536 \(64 KiB\)$/,
        null,
      ],
      [Buffer.from([0xc3, 0x28]), 'bad_request', /^the payload is not UTF-8 text/, null],
      ['', 'bad_request', /^the payload is not valid JSON: Unexpected end of JSON input$/, null],
      ['{"id": 1,}', 'bad_request', /^the payload is not valid JSON/, null],
      ['"what colour?"', 'bad_request', /not the string "what colour\?"$/, null],
      ['null', 'bad_request', /not null$/, null],
      ['{"id": {"x": 1}, "question": "q"}', 'bad_request', /^id must be a string .* or a number, not an object$/, null],
      ['{"id": "u", "question": "q"}', 'unknown_camera', /^unknown camera "garage"$/, 'u'],
      ['{"id": "m", "question": ""}', 'bad_request', /^the question is empty$/, 'm'],
      ['{"id": "w", "question": "q", "window_s": "2"}', 'bad_request', /^window_s must be a number/, 'w'],
      ['{"id": "f", "question": "q", "max_frames": 2.5}', 'bad_request', /^max_frames must be a whole number$/, 'f'],
      ['{"id": "b", "question": "q", "budget": 1.5}', 'bad_request', /^budget must be at most 1/, 'b'],
      ['{"id": "k", "question": "q", "a": 1, "b": 2}', 'bad_request', /^unknown keys "a", "b"$/, 'k'],
      [JSON.stringify({ id: 'l', question: 'x'.repeat(5000) }), 'bad_request', /longer than 4096 characters/, 'l'],
    ];
    for (const [payload, code, error, id] of cases) {
      const camera = code === 'unknown_camera' ? 'garage' : 'demo';
      const reply = refusal(payload, camera);
      assert.match(reply.error, error, reply.error);
      assert.equal(reply.code, code);
      assert.equal(reply.id, id);
      assert.equal(reply.camera, camera);
      assert.ok(reply.hint);
    }
    assert.match(refusal('{"question": "q"}', 'garage').hint ?? '', /^cameras: demo, door$/);
    assert.match(refusal('{"question": "q", "method": "x"}').hint ?? '', /^valid methods: none, /);
  });

  it('errors of a query that was accepted: busy (with a retry time), deadline, shutting down, refused, failed', () => {
    const busy = errorReply('1', 'demo', new BusyError(32, 16));
    assert.deepEqual(busy, {
      id: '1',
      camera: 'demo',
      error: 'busy: 32 queries are waiting',
      hint: 'try again in 16 s',
      code: 'busy',
      retry_after_s: 16,
    });
    assert.equal(errorReply(null, 'demo', new DeadlineError(61_000, 60_000)).code, 'deadline');
    assert.equal(errorReply(null, 'demo', new ShuttingDownError()).code, 'shutting_down');
    assert.equal(errorReply(null, 'demo', new UsageError('camera demo has no frames yet', 'wait')).code, 'bad_request');
    const failed = errorReply(2, 'demo', new Error('worker crashed'));
    assert.deepEqual(failed, {
      id: 2,
      camera: 'demo',
      error: 'worker crashed',
      hint: 'the daemon logged the error',
      code: 'failed',
    });
  });
});

describe('alert answers and broker addresses', () => {
  it('an answer is yes, no or unknown by its first word', () => {
    assert.equal(alertState('yes'), 'yes');
    assert.equal(alertState(' Yes.'), 'yes');
    assert.equal(alertState('no, there is not'), 'no');
    assert.equal(alertState('NO'), 'no');
    assert.equal(alertState('purple'), 'unknown');
    assert.equal(alertState(''), 'unknown');
    assert.equal(alertState('yesterday'), 'unknown');
  });

  it('mqtt.listen: host:port, [v6]:port or a port', () => {
    assert.deepEqual(parseBrokerListen('127.0.0.1:1883'), { host: '127.0.0.1', port: 1883 });
    assert.deepEqual(parseBrokerListen('[::1]:1884'), { host: '::1', port: 1884 });
    assert.deepEqual(parseBrokerListen('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
    assert.deepEqual(parseBrokerListen('1885'), { host: '127.0.0.1', port: 1885 });
    assert.throws(() => parseBrokerListen('localhost'), /mqtt\.listen: "localhost" is not host:port/);
    assert.throws(() => parseBrokerListen('h:70000'), /not host:port/);
  });
});

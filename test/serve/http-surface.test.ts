import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParams,
} from 'openai/resources/chat/completions';
import sharp from 'sharp';
import { GREEDY } from '../../src/engine/sampling.js';
import type { Frame } from '../../src/media/frame.js';
import { demoFrames, type HttpDaemon, postChat, question, startHttpDaemon } from '../helpers/http-daemon.js';

const QUESTION = 'what colour is the circle?';
const TOKEN = 's3cret-token';

type Sieve = {
  camera?: string;
  images?: number;
  frames: { t: number; at?: string }[];
  method: string;
  tokens: { prompt: number; generated: number; visual_input: number; visual_layer_averaged: number };
  latency_ms: { total: number; first_token: number; queue: number };
  memory: { peak_rss_bytes: number };
  model: string;
};
const sieveOf = (x: unknown) => (x as { sieve: Sieve }).sieve;

/**
 * The daemon's `sieve` extension added to a request of the official client, which sends fields it does not
 * know as they are (its README, "Undocumented request params").
 */
function withSieve<T extends ChatCompletionCreateParams>(params: T, sieve: Record<string, unknown>): T {
  return { ...params, sieve };
}

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/** The reply is an OpenAI error with this status and code, and its message is a sentence about the problem. */
async function expectError(res: Response, status: number, code: string, message?: RegExp): Promise<ErrorBody> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text) as ErrorBody;
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(body.error.code, code, text);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 10, text);
  assert.equal(
    body.error.type,
    status >= 500 ? 'server_error' : status === 401 ? 'authentication_error' : 'invalid_request_error',
  );
  if (message) assert.match(body.error.message, message);
  return body;
}

/** The text of a stream of SSE events, split into its `data:` payloads. */
function sseEvents(text: string): string[] {
  assert.ok(text.endsWith('\n\n'), 'events end with a blank line');
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((event) => {
      assert.match(event, /^data: /);
      return event.slice('data: '.length);
    });
}

describe('HTTP API (OpenAI-compatible) on a running daemon', { timeout: 120_000 }, () => {
  let d: HttpDaemon;
  let openai: OpenAI;
  let frames: Frame[];
  let dataUrls: string[];
  const imageMessage = (urls: readonly string[], text = QUESTION) => [
    {
      role: 'user' as const,
      content: [
        ...urls.map((url) => ({ type: 'image_url' as const, image_url: { url } })),
        { type: 'text' as const, text },
      ],
    },
  ];

  before(async () => {
    d = await startHttpDaemon({ capacity: 1, maxBodyBytes: 2 * 2 ** 20 });
    openai = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    ({ frames, dataUrls } = await demoFrames(4));
  });
  after(async () => {
    await d?.stop();
  });

  it('a camera window with the official client: chat.completion, usage, and the provenance', async () => {
    const completion = await openai.chat.completions.create(
      withSieve(
        { model: 'demo', messages: [{ role: 'user', content: QUESTION }] },
        { camera: 'demo', window_s: 2, method: 'vitcop', budget: 0.111 },
      ),
    );
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'demo');
    assert.match(completion.id, /^chatcmpl-/);
    assert.equal(completion.choices.length, 1);
    assert.equal(completion.choices[0].message.role, 'assistant');
    assert.equal(completion.choices[0].message.content, 'purple');
    assert.equal(completion.choices[0].finish_reason, 'stop');
    const usage = completion.usage;
    assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens === 1);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    const sieve = sieveOf(completion);
    assert.equal(sieve.camera, 'demo');
    assert.equal(sieve.method, 'vitcop');
    assert.ok(sieve.frames.length >= 2 && sieve.frames.every((f) => f.t >= 0 && f.at));
    const span = sieve.frames[sieve.frames.length - 1].t - sieve.frames[0].t;
    assert.ok(span <= 2, `window_s 2 keeps the last 2 s (span ${span})`);
    assert.ok(sieve.tokens.visual_layer_averaged < sieve.tokens.visual_input);
    assert.equal(sieve.tokens.prompt, usage.prompt_tokens);
    assert.ok(sieve.latency_ms.total > 0 && sieve.memory.peak_rss_bytes > 0);
  });

  it('streaming a camera answer with the official client: chunks, finish_reason, usage chunk', async () => {
    const stream = await openai.chat.completions.create(
      withSieve(
        {
          model: 'demo',
          messages: [{ role: 'user', content: QUESTION }],
          stream: true,
          stream_options: { include_usage: true },
        },
        { camera: 'demo' },
      ),
    );
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'demo'));
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id for the whole stream');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(text.trim(), 'purple');
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    assert.equal(finish?.choices[0].finish_reason, 'stop');
    assert.equal(sieveOf(finish).camera, 'demo');
    const usage = chunks[chunks.length - 1];
    assert.deepEqual(usage.choices, []);
    assert.ok(usage.usage && usage.usage.completion_tokens === 1);
  });

  it('images as data: URLs are frames of one clip: the same answer as the model on those frames', async () => {
    const direct = await d.daemon.model.answer(frames, QUESTION, { maxNewTokens: 32, sampling: GREEDY });
    const completion = await openai.chat.completions.create({ model: 'demo', messages: imageMessage(dataUrls) });
    assert.equal(completion.choices[0].message.content, direct.answer);
    assert.equal(completion.choices[0].message.content, 'purple');
    assert.equal(completion.usage?.prompt_tokens, direct.promptTokens);
    const sieve = sieveOf(completion);
    assert.equal(sieve.images, 4);
    assert.deepEqual(
      sieve.frames.map((f) => f.t),
      [0, 1, 2, 3],
    );
    assert.equal(sieve.method, 'none');

    const stream = await openai.chat.completions.create(
      withSieve({ model: 'demo', messages: imageMessage(dataUrls), stream: true }, { method: 'divprune' }),
    );
    let text = '';
    let last: ChatCompletionChunk | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      last = chunk;
    }
    assert.equal(text.trim(), 'purple');
    assert.equal(sieveOf(last).method, 'divprune');
    assert.ok(sieveOf(last).tokens.visual_input < 4 * 64);
  });

  it('max_tokens, temperature and seed: the limit gives finish_reason length; a seed repeats; tokens stream as made', async () => {
    const short = await openai.chat.completions.create(
      withSieve({ model: 'demo', messages: [{ role: 'user', content: QUESTION }], max_tokens: 1 }, { camera: 'demo' }),
    );
    assert.equal(short.choices[0].finish_reason, 'length');
    assert.equal(short.usage?.completion_tokens, 1);

    // At temperature 2 one of the first seeds samples an answer of more than one token from these two frames.
    const sampling = (seed: number) => ({
      model: 'demo',
      messages: imageMessage(dataUrls.slice(0, 2)),
      temperature: 2,
      seed,
      max_tokens: 8,
    });
    const sample = async (seed: number) => (await openai.chat.completions.create(sampling(seed))) as ChatCompletion;
    let seed = 0;
    let plain = await sample(seed);
    while ((plain.usage?.completion_tokens ?? 0) < 2 && seed < 20) plain = await sample(++seed);
    const again = await sample(seed);
    assert.equal(again.choices[0].message.content, plain.choices[0].message.content, 'same seed, same answer');
    const stream = await openai.chat.completions.create({ ...sampling(seed), stream: true });
    const deltas: string[] = [];
    for await (const chunk of stream) if (chunk.choices[0]?.delta.content) deltas.push(chunk.choices[0].delta.content);
    assert.equal(deltas.join('').trim(), plain.choices[0].message.content);
    const generated = plain.usage?.completion_tokens ?? 0;
    assert.ok(generated > 1, `sampling at temperature 2 makes more than one token (${generated})`);
    assert.ok(deltas.length > 1, `one chunk per new piece of text, not one at the end (${deltas.length})`);
  });

  it('raw SSE: text/event-stream, data: chunks, data: [DONE] last', async () => {
    const res = await postChat(d.url, { messages: question(QUESTION), stream: true, sieve: { camera: 'demo' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const events = sseEvents(await res.text());
    assert.equal(events[events.length - 1], '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as ChatCompletionChunk);
    assert.ok(chunks.length >= 3, 'role, content, finish');
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'stop');
    assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), 'purple');
  });

  it('GET /v1/models, /v1/models/demo, /health and /metrics', async () => {
    const models = await openai.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['demo'],
    );
    assert.equal((await openai.models.retrieve('demo')).id, 'demo');
    const health = (await (await fetch(`${d.url}/health`)).json()) as {
      status: string;
      model: string;
      cameras: { name: string; state: string; window_frames: number }[];
    };
    assert.equal(health.status, 'ok');
    const head = await fetch(`${d.url}/health`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    assert.equal(health.model, 'demo');
    assert.equal(health.cameras[0].name, 'demo');
    assert.equal(health.cameras[0].state, 'live');
    assert.ok(health.cameras[0].window_frames > 0);

    const res = await fetch(`${d.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    const value = (line: RegExp) => {
      const match = text.split('\n').find((l) => line.test(l));
      assert.ok(match, `a line matching ${line} in\n${text.slice(0, 3000)}`);
      return Number(match.split(' ').pop());
    };
    assert.ok(text.split('\n').every((l) => l === '' || l.startsWith('#') || l.startsWith('sieve_')));
    assert.equal(value(/^sieve_query_queue_depth /), 0);
    assert.ok(value(/^sieve_query_ttft_seconds_count\{surface="http",kind="camera"\}/) >= 3);
    assert.ok(value(/^sieve_query_latency_seconds_count\{surface="http",kind="images"\}/) >= 3);
    assert.ok(value(/^sieve_query_latency_seconds_bucket\{le="\+Inf",surface="http",kind="camera"\}/) >= 3);
    assert.ok(value(/^sieve_visual_tokens_kept_sum\{surface="http",kind="camera"\}/) > 0);
    assert.ok(value(/^sieve_camera_frames_encoded_total\{camera="demo"\}/) > 0);
    assert.ok(value(/^sieve_camera_frames_dropped_total\{camera="demo"\}/) >= 0);
    assert.equal(value(/^sieve_camera_reconnects_total\{camera="demo"\}/), 0);
    assert.ok(value(/^sieve_rss_bytes /) > 50e6);
    assert.ok(value(/^sieve_scheduler_queries_total\{outcome="completed"\}/) >= 6);
    assert.ok(value(/^sieve_query_replies_total\{surface="http",outcome="answer"\}/) >= 6);
  });

  it('bad input gets a 4xx in OpenAI’s error shape that names the problem, and the daemon answers afterwards', async () => {
    const ask = (extra: Record<string, unknown>) => postChat(d.url, { messages: question(QUESTION), ...extra });
    const camera = { sieve: { camera: 'demo' } };
    await expectError(await postChat(d.url, '{"messages": [ {"role": "user", '), 400, 'invalid_json', /not valid JSON/);
    await expectError(await postChat(d.url, ''), 400, 'invalid_json', /empty/);
    await expectError(
      await postChat(d.url, { sieve: { camera: 'demo' } }),
      400,
      'invalid_request',
      /messages is missing/,
    );
    const empty = await expectError(
      await postChat(d.url, { messages: question('   '), ...camera }),
      400,
      'empty_question',
      /the question is empty/,
    );
    assert.equal(empty.error.param, 'messages[0].content');
    await expectError(
      await postChat(d.url, { messages: [{ role: 'system', content: 'be brief' }], ...camera }),
      400,
      'invalid_request',
      /no user message/,
    );
    const unknown = await expectError(
      await ask({ sieve: { camera: 'door' } }),
      404,
      'camera_not_found',
      /unknown camera "door": the pipeline's cameras are demo/,
    );
    assert.equal(unknown.error.param, 'sieve.camera');
    await expectError(await ask({}), 400, 'missing_input', /no images and no camera.*cameras: demo/);
    const method = await expectError(
      await ask({ sieve: { camera: 'demo', method: 'magic' } }),
      400,
      'invalid_method',
      /unknown pruning method "magic".*vitcop/,
    );
    assert.equal(method.error.param, 'sieve.method');
    for (const budget of [1.5, 0, 'half']) {
      const b = await expectError(await ask({ sieve: { camera: 'demo', budget } }), 400, 'invalid_request', /budget/);
      assert.equal(b.error.param, 'sieve.budget');
    }
    await expectError(await ask({ sieve: { camera: 'demo', colour: 1 } }), 400, 'invalid_request', /sieve\.colour/);
    await expectError(await ask({ ...camera, max_tokens: 0 }), 400, 'invalid_request', /max_tokens/);
    await expectError(await ask({ ...camera, temperature: 'hot' }), 400, 'invalid_request', /temperature/);
    await expectError(await ask({ ...camera, stream: 'yes' }), 400, 'invalid_request', /stream/);
    await expectError(await ask({ ...camera, n: 2 }), 400, 'invalid_request', /^n must be/);

    // Binary garbage: as JSON, and as what it is.
    const garbage = new Uint8Array(4096).map((_, i) => (i * 2654435761) >>> 24);
    await expectError(await postChat(d.url, garbage), 400, 'invalid_json');
    await expectError(
      await postChat(d.url, garbage, { 'content-type': 'application/octet-stream' }),
      415,
      'unsupported_media_type',
      /application\/octet-stream.*Content-Type: application\/json/,
    );
    // Over the body limit (2 MB here): declared by Content-Length, and sent chunked without one.
    const big = { messages: question(QUESTION), ...camera, pad: 'x'.repeat(3 * 2 ** 20) };
    await expectError(await postChat(d.url, big), 413, 'payload_too_large', /more than the limit of 2\.0 MB/);
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 40; i++) controller.enqueue(new Uint8Array(128 * 1024).fill(32));
        controller.close();
      },
    });
    const res = await fetch(`${d.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chunked,
      duplex: 'half',
    } as RequestInit);
    await expectError(res, 413, 'payload_too_large');

    await expectError(
      await ask({ messages: question(`${'why is the circle purple? '.repeat(800)}`), ...camera }),
      400,
      'context_length_exceeded',
      /too long for this model.*4096.*shorten the question or lower max_tokens/,
    );
    await expectError(
      await ask({ messages: question('w'.repeat(100_000)), ...camera }),
      400,
      'context_length_exceeded',
      /the question is 100000 characters, more than the 32768 this model's context \(4096 positions\) can take/,
    );
    await expectError(
      await ask({ messages: question('what is <image> here?'), ...camera }),
      400,
      'invalid_question',
      /<image>/,
    );
    // Images: not an image, a broken PNG (its header reads, its pixels do not), a URL to fetch, too many.
    const notImage = `data:image/png;base64,${Buffer.from('definitely not a PNG').toString('base64')}`;
    const unreadable = await expectError(
      await postChat(d.url, { messages: imageMessage([notImage]) }),
      400,
      'image_unreadable',
      /messages\[0\]\.content\[0\]\.image_url: not a readable image/,
    );
    assert.equal(unreadable.error.param, 'messages[0].content[0].image_url');
    const png = Buffer.from(dataUrls[0].split(',')[1], 'base64');
    const truncated = `data:image/png;base64,${png.subarray(0, 120).toString('base64')}`;
    await expectError(
      await postChat(d.url, { messages: imageMessage([dataUrls[1], truncated]) }),
      400,
      'image_unreadable',
      /content\[1\]\.image_url: cannot read image/,
    );
    await expectError(
      await postChat(d.url, { messages: imageMessage(['https://example.com/cat.png']) }),
      400,
      'invalid_image_url',
      /https: URLs are not fetched.*data:image\/png;base64/,
    );
    await expectError(
      await postChat(d.url, { messages: imageMessage(['data:image/png;base64,@@@@']) }),
      400,
      'invalid_image_url',
      /base64 is broken/,
    );
    const huge = await sharp({ create: { width: 8000, height: 6000, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    await expectError(
      await postChat(d.url, { messages: imageMessage([`data:image/png;base64,${huge.toString('base64')}`]) }),
      400,
      'image_too_large',
      /8000×6000 is more than 40 megapixels/,
    );
    await expectError(
      await postChat(d.url, { messages: imageMessage(Array(70).fill(dataUrls[0])) }),
      400,
      'context_length_exceeded',
      /70 images do not fit the model's context of 4096 positions.*at most \d+/,
    );
    await expectError(
      await postChat(d.url, { messages: imageMessage([dataUrls[0]]), ...camera }),
      400,
      'invalid_request',
      /both images and sieve\.camera/,
    );
    // The model, the route, the method.
    const model = await expectError(
      await ask({ model: 'gpt-4o', ...camera }),
      404,
      'model_not_found',
      /"gpt-4o" does not exist here: this daemon serves "demo"/,
    );
    assert.equal(model.error.param, 'model');
    await expectError(await fetch(`${d.url}/v1/completions`), 404, 'unknown_url', /POST \/v1\/chat\/completions/);
    const wrong = await fetch(`${d.url}/v1/chat/completions`);
    assert.equal(wrong.headers.get('allow'), 'POST');
    await expectError(wrong, 405, 'method_not_allowed');
    const del = await fetch(`${d.url}/health`, { method: 'DELETE' });
    assert.equal(del.headers.get('allow'), 'GET, HEAD');
    await expectError(del, 405, 'method_not_allowed', /\/health takes GET or HEAD, not DELETE/);
    // The official client turns them into its typed errors.
    await assert.rejects(
      openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: QUESTION }] }),
      (err: unknown) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found' && err.param === 'model',
    );
    await assert.rejects(
      openai.chat.completions.create(
        withSieve({ model: 'demo', messages: [{ role: 'user', content: QUESTION }] }, { camera: 'nowhere' }),
      ),
      (err: unknown) => err instanceof OpenAI.NotFoundError && /unknown camera "nowhere"/.test(err.message),
    );

    const after = await postChat(d.url, { messages: question(QUESTION), ...camera });
    assert.equal(after.status, 200);
    assert.equal(((await after.json()) as ChatCompletion).choices[0].message.content, 'purple');
  });

  it('a bearer token: none or a wrong one is 401, the right one answers', async () => {
    const { HttpSurface } = await import('../../src/serve/http-surface.js');
    const guarded = await HttpSurface.start(d.daemon, {
      listen: '127.0.0.1:0',
      token: TOKEN,
      maxBodyBytes: 2 ** 20,
      log: () => undefined,
    });
    try {
      const url = guarded.address.url;
      const none = await fetch(`${url}/v1/models`);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      await expectError(none, 401, 'missing_api_key', /Authorization: Bearer/);
      await expectError(
        await fetch(`${url}/health`, { headers: { authorization: 'Bearer nope' } }),
        401,
        'invalid_api_key',
      );
      const good = new OpenAI({ baseURL: `${url}/v1`, apiKey: TOKEN, maxRetries: 0 });
      const completion = await good.chat.completions.create(
        withSieve({ model: 'demo', messages: [{ role: 'user', content: QUESTION }] }, { camera: 'demo' }),
      );
      assert.equal(completion.choices[0].message.content, 'purple');
      const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 });
      await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
    } finally {
      await guarded.close();
    }
  });

  it('a full queue (capacity 1) is 503 with Retry-After at once; every request gets exactly one reply', async () => {
    // Slow queries (24 images each) so that they overlap.
    const body = { messages: imageMessage(Array(24).fill(dataUrls[0])), max_tokens: 4 };
    const replies = await Promise.all(Array.from({ length: 6 }, () => postChat(d.url, body)));
    const statuses = replies.map((r) => r.status);
    assert.ok(
      statuses.every((s) => s === 200 || s === 503),
      String(statuses),
    );
    assert.ok(statuses.filter((s) => s === 200).length >= 2, `one runs and one waits: ${statuses}`);
    const busy = replies.filter((r) => r.status === 503);
    assert.ok(busy.length >= 1, `more than capacity + 1 at once is busy: ${statuses}`);
    for (const r of busy) {
      assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
      await expectError(r, 503, 'busy', /busy: 1 queries are waiting; try again in \d+ s/);
    }
    for (const r of replies.filter((x) => x.status === 200)) {
      assert.equal(((await r.json()) as ChatCompletion).choices[0].message.content, 'red'); // the first frame's circle
    }
    const stats = d.daemon.scheduler.stats();
    assert.equal(stats.accepted, stats.completed + stats.failed, 'nothing accepted is left without a reply');
  });

  it('a query that waits past its deadline (sieve.deadline_s) is a 504 and was not run', async () => {
    const slow = postChat(d.url, { messages: imageMessage(Array(24).fill(dataUrls[0])), max_tokens: 4 });
    while (d.daemon.scheduler.stats().running === 0) await new Promise((r) => setTimeout(r, 2));
    const late = await postChat(d.url, { messages: question(QUESTION), sieve: { camera: 'demo', deadline_s: 0.001 } });
    await expectError(late, 504, 'deadline_exceeded', /past its deadline of 0\.0 s/);
    assert.equal((await slow).status, 200);
  });

  it('on shutdown the running query is answered and the waiting one gets "shutting down"', async () => {
    const running = postChat(d.url, { messages: imageMessage(Array(24).fill(dataUrls[0])), max_tokens: 4 });
    while (d.daemon.scheduler.stats().running === 0) await new Promise((r) => setTimeout(r, 2));
    const waiting = postChat(d.url, { messages: question(QUESTION), stream: true, sieve: { camera: 'demo' } });
    while (d.daemon.scheduler.stats().depth === 0) await new Promise((r) => setTimeout(r, 2));
    await d.stop();
    const first = await running;
    assert.equal(first.status, 200);
    assert.equal(((await first.json()) as ChatCompletion).choices[0].message.content, 'red');
    await expectError(await waiting, 503, 'shutting_down', /shutting down: the query was not run/);
    await assert.rejects(fetch(`${d.url}/health`), 'the server no longer listens');
  });
});

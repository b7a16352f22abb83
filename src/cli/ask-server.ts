/**
 * `sieve ask --server URL`: the frames this process sampled go, as PNG images, with the question to a running
 * `sieve serve --http` (its OpenAI-compatible API), whose model is loaded and warm, and the answer streams back.
 */
import { basename } from 'node:path';
import sharp from 'sharp';
import type { SamplingOptions } from '../engine/sampling.js';
import type { PruneRequest } from '../engine/visual-query.js';
import { SieveError, UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';

export interface ServerQuestion {
  /** The server's base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Bearer token when the server has `http.token`. */
  token?: string;
  /** The checkpoint folder the frames were planned for: the server must serve the same model. */
  modelDir: string;
  frames: readonly Frame[];
  question: string;
  maxNewTokens: number;
  sampler: SamplingOptions;
  prune: PruneRequest;
}

export interface ServerAnswer {
  answer: string;
  finishReason: 'stop' | 'length';
  /** The server's provenance: frames, method, tokens, latency_ms, memory (README, HTTP API). */
  sieve: Record<string, unknown>;
  /** Measured here: from sending the request to the first text, and to the end of the reply. */
  firstTextMs: number;
  totalMs: number;
  /** Bytes of the request body (the frames as PNG data URLs). */
  requestBytes: number;
}

const START_HINT = 'start one with `sieve serve --http 127.0.0.1:8080` (and --model), or leave out --server';

/** The base URL as given, checked: http(s) only, no path beyond `/` (the API lives at /v1). */
export function serverBaseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--server ${text} is not a URL`, 'e.g. --server http://127.0.0.1:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--server ${text} is not an http(s) URL`, 'e.g. --server http://127.0.0.1:8080');
  }
  return url.origin;
}

/** The model's id on the server: its folder's name, as `sieve serve` names it. */
const modelIdOf = (modelDir: string) => basename(modelDir);

async function pngDataUrl(frame: Frame): Promise<string> {
  const { width, height, rgb } = frame;
  const png = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 1 })
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** fetch, with a refused or failed connection said as what to do. */
async function request(url: string, init: RequestInit, base: string): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new SieveError(`cannot reach sieve serve at ${base} (${why})`, START_HINT);
  }
}

/** An error reply of the API ({"error": {message, code}}) as the error the CLI reports. */
async function replyError(res: Response, base: string): Promise<SieveError> {
  const text = await res.text();
  let message = text.slice(0, 500);
  try {
    const body = JSON.parse(text) as { error?: { message?: string; code?: string } };
    if (body.error?.message) message = `${body.error.message} (${body.error.code ?? res.status})`;
  } catch {
    // not the API's JSON: the start of the body says what answered
  }
  const hint =
    res.status === 401
      ? 'the server has http.token: give it with --token or SIEVE_TOKEN'
      : res.status === 404 && !message.includes('model_not_found')
        ? `is ${base} a sieve serve HTTP API? ${START_HINT}`
        : undefined;
  return new SieveError(`sieve serve at ${base} answered ${res.status}: ${message}`, hint, res.status < 500 ? 2 : 1);
}

/** Checks that the server serves the model the frames were planned for (its id is the folder's name). */
async function checkModel(q: ServerQuestion, base: string, headers: Record<string, string>): Promise<void> {
  const res = await request(`${base}/v1/models`, { headers }, base);
  if (!res.ok) throw await replyError(res, base);
  const body = (await res.json()) as { data?: { id?: string }[] };
  const served = body.data?.map((m) => m.id) ?? [];
  const wanted = modelIdOf(q.modelDir);
  if (!served.includes(wanted)) {
    throw new UsageError(
      `sieve serve at ${base} serves the model ${served.join(', ') || '(none)'}, not ${wanted}`,
      'give --model the checkpoint folder that sieve serve runs: its processor decides how the frames are sampled',
    );
  }
}

/** Reads a chat.completion.chunk stream, calling `onText` with each piece of the answer. */
async function readStream(res: Response, base: string, onText: (delta: string) => void) {
  if (!res.body) throw new SieveError(`sieve serve at ${base} sent an empty reply`);
  const decoder = new TextDecoder();
  let buffered = '';
  let finishReason: 'stop' | 'length' = 'stop';
  let sieve: Record<string, unknown> = {};
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk, { stream: true });
    let end = buffered.indexOf('\n\n');
    while (end >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      end = buffered.indexOf('\n\n');
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const data = JSON.parse(event.slice(6));
      if (data.error) throw new SieveError(`sieve serve at ${base} failed while answering: ${data.error.message}`);
      const choice = data.choices?.[0];
      if (choice?.delta?.content) onText(choice.delta.content);
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      if (data.sieve) sieve = data.sieve;
    }
  }
  return { finishReason, sieve };
}

/** Asks a running `sieve serve --http` about the frames; text streams to `onText` as it is generated. */
export async function askServer(q: ServerQuestion, onText: (delta: string) => void = () => {}): Promise<ServerAnswer> {
  const base = serverBaseUrl(q.url);
  const headers: Record<string, string> = q.token ? { authorization: `Bearer ${q.token}` } : {};
  await checkModel(q, base, headers);
  const images = await Promise.all(q.frames.map(pngDataUrl));
  const body = JSON.stringify({
    model: modelIdOf(q.modelDir),
    stream: true,
    max_tokens: q.maxNewTokens,
    temperature: q.sampler.temperature,
    top_p: q.sampler.topP,
    seed: q.sampler.seed,
    messages: [
      {
        role: 'user',
        content: [
          ...images.map((url) => ({ type: 'image_url', image_url: { url } })),
          { type: 'text', text: q.question },
        ],
      },
    ],
    sieve: q.prune.method === 'none' ? {} : { method: q.prune.method, budget: q.prune.budget },
  });
  const sent = performance.now();
  const res = await request(
    `${base}/v1/chat/completions`,
    { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body },
    base,
  );
  if (!res.ok) throw await replyError(res, base);
  let answer = '';
  let firstTextMs = Number.NaN;
  const reply = await readStream(res, base, (delta) => {
    if (answer === '') firstTextMs = performance.now() - sent;
    answer += delta;
    onText(delta);
  });
  return { answer, ...reply, firstTextMs, totalMs: performance.now() - sent, requestBytes: Buffer.byteLength(body) };
}

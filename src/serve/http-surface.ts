/**
 * The daemon's HTTP API (design §5): OpenAI-compatible chat completions about a camera's window (the
 * `sieve` extension) or about images sent with the question, SSE streaming, the model list, health and
 * Prometheus metrics. Every query goes through the daemon's one scheduler; every error is a JSON reply
 * in OpenAI's shape that names the problem, and the daemon keeps serving.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import sharp, { type Metadata } from 'sharp';
import type { Answer } from '../engine/answer-pipeline.js';
import { fitFramesToContext } from '../engine/context-fit.js';
import { placeholderIn } from '../engine/prompt.js';
import type { PruneRequest } from '../engine/visual-query.js';
import { MediaError, ModelError, SieveError, UsageError } from '../errors.js';
import { MAX_FRAMES } from '../media/frame.js';
import { readImage } from '../media/image-source.js';
import { defaultBudget } from '../prune/registry.js';
import { answerTokens, type Daemon, type WindowAnswer } from './daemon.js';
import type { SieveMetrics } from './metrics.js';
import { BusyError, DeadlineError, ShuttingDownError } from './query-scheduler.js';

export interface HttpSurfaceOptions {
  /** host:port (port 0: any free port). */
  listen: string;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  maxBodyBytes: number;
  log: (line: string) => void;
  metrics?: SieveMetrics;
}

/** Image formats read from data: URLs. */
const IMAGE_FORMATS = ['png', 'jpeg', 'webp'];
/** Pixels one image may have, and all the images of a request together (decoded RGB is 3 bytes a pixel). */
const MAX_IMAGE_PIXELS = 40_000_000;
const MAX_REQUEST_PIXELS = 120_000_000;
/** After a 413, this much more of the body is read and thrown away (so the client sees the reply), then the
 * connection is cut. */
const DRAIN_AFTER_413 = 64 * 2 ** 20;
const SURFACE = 'http';

/** An error reply: OpenAI's `{"error": {message, type, param, code}}` with an HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get type(): string {
    if (this.status === 401) return 'authentication_error';
    if (this.status === 429) return 'rate_limit_error';
    return this.status >= 500 ? 'server_error' : 'invalid_request_error';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const withHint = (err: SieveError) => (err.hint ? `${err.message}; ${err.hint}` : err.message);

/** Any failure as the reply it gets. */
export function apiErrorOf(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof BusyError) {
    return new ApiError(503, withHint(err), 'busy', null, { 'retry-after': String(err.retryAfterS) });
  }
  if (err instanceof ShuttingDownError) return new ApiError(503, withHint(err), 'shutting_down');
  if (err instanceof DeadlineError) return new ApiError(504, withHint(err), 'deadline_exceeded');
  if (err instanceof MediaError) return new ApiError(400, withHint(err), 'image_unreadable');
  if (err instanceof ModelError) return new ApiError(500, withHint(err), 'model_error');
  if (err instanceof SieveError) {
    if (err.exitCode === 2) {
      const code = /too long for this model/.test(err.message) ? 'context_length_exceeded' : 'invalid_request';
      return new ApiError(400, withHint(err), code);
    }
    return new ApiError(500, withHint(err), 'internal_error');
  }
  return new ApiError(500, `internal error: ${err instanceof Error ? err.message : String(err)}`, 'internal_error');
}

/** What a chat completion request asks, checked. */
export interface ChatRequest {
  question: string;
  /** Images of the last user message (data: URLs decoded to bytes), in order. */
  images: { bytes: Buffer; param: string }[];
  camera?: string;
  windowS?: number;
  maxFrames?: number;
  method?: string;
  budget?: number;
  deadlineMs?: number;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  stream: boolean;
  includeUsage: boolean;
}

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'];
const SIEVE_KEYS = ['camera', 'window_s', 'max_frames', 'method', 'budget', 'deadline_s'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (message: string, param: string | null, code = 'invalid_request') =>
  new ApiError(400, message, code, param);

function numberParam(
  body: Record<string, unknown>,
  key: string,
  param: string,
  { min, max, int = false, exclusiveMin = false }: { min: number; max: number; int?: boolean; exclusiveMin?: boolean },
): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  const range = `${exclusiveMin ? '>' : '≥'} ${min} and ≤ ${max}`;
  if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v))) {
    const given = JSON.stringify(v);
    const shown = given.length > 40 ? `${given.slice(0, 40)}…` : given;
    throw bad(`${param} must be ${int ? 'an integer' : 'a number'} ${range}, not ${shown}`, param);
  }
  if (v < min || v > max || (exclusiveMin && v === min)) throw bad(`${param} must be ${range}, not ${v}`, param);
  return v;
}

/**
 * Checks a chat completion body: the question and images come from the last user message (text parts
 * joined by newlines; image_url parts as data: URLs), the answer's length and sampling from max_tokens
 * (or max_completion_tokens), temperature, top_p and seed, the camera window from `sieve`.
 */
export function parseChatRequest(body: unknown, maxNewTokensLimit = 4096): ChatRequest {
  if (!isObject(body)) {
    throw bad('the body must be a JSON object such as {"model": …, "messages": [{"role": "user", …}]}', null);
  }
  const { messages } = body;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw bad(
      messages === undefined
        ? 'messages is missing: give [{"role": "user", "content": "your question"}]'
        : 'messages must be a non-empty array of {"role", "content"} objects',
      'messages',
    );
  }
  let last = -1;
  for (const [i, m] of messages.entries()) {
    if (!isObject(m)) throw bad(`messages[${i}] must be an object with role and content`, `messages[${i}]`);
    if (typeof m.role !== 'string' || !ROLES.includes(m.role)) {
      throw bad(`messages[${i}].role must be one of ${ROLES.join(', ')}`, `messages[${i}].role`);
    }
    if (m.role === 'user') last = i;
  }
  if (last < 0) throw bad('no user message: the question is the last message with role "user"', 'messages');
  const message = messages[last] as Record<string, unknown>;
  const texts: string[] = [];
  const images: ChatRequest['images'] = [];
  const at = `messages[${last}].content`;
  if (typeof message.content === 'string') texts.push(message.content);
  else if (Array.isArray(message.content)) {
    for (const [j, part] of message.content.entries()) {
      const param = `${at}[${j}]`;
      if (!isObject(part) || typeof part.type !== 'string') {
        throw bad(`${param} must be {"type": "text", "text": …} or {"type": "image_url", "image_url": …}`, param);
      }
      if (part.type === 'text') {
        if (typeof part.text !== 'string') throw bad(`${param}.text must be a string`, `${param}.text`);
        texts.push(part.text);
      } else if (part.type === 'image_url') {
        const url =
          typeof part.image_url === 'string' ? part.image_url : isObject(part.image_url) && part.image_url.url;
        if (typeof url !== 'string') {
          throw bad(`${param}.image_url must be {"url": "data:image/png;base64,…"}`, `${param}.image_url`);
        }
        images.push({ bytes: decodeDataUrl(url, `${param}.image_url`), param: `${param}.image_url` });
      } else {
        throw bad(`${param}.type "${part.type}" is not supported: give "text" or "image_url" parts`, `${param}.type`);
      }
    }
  } else {
    throw bad(`${at} must be a string or an array of text and image_url parts`, at);
  }
  const question = texts.join('\n').trim();
  if (question === '') {
    throw bad(
      'the question is empty: the last user message needs text, e.g. "what colour is the circle?"',
      at,
      'empty_question',
    );
  }
  if (images.length > MAX_FRAMES) throw bad(`${images.length} images: at most ${MAX_FRAMES} per request`, at);

  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw bad('n must be 1: one answer per request (send several requests for several)', 'n');
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
    throw bad('stream must be true or false', 'stream');
  }
  let includeUsage = false;
  if (body.stream_options !== undefined && body.stream_options !== null) {
    if (!isObject(body.stream_options)) throw bad('stream_options must be an object', 'stream_options');
    const v = body.stream_options.include_usage;
    if (v !== undefined && typeof v !== 'boolean') {
      throw bad('stream_options.include_usage must be true or false', 'stream_options.include_usage');
    }
    includeUsage = v === true;
  }
  const tokenLimit = { min: 1, max: maxNewTokensLimit, int: true };
  const maxTokens =
    numberParam(body, 'max_completion_tokens', 'max_completion_tokens', tokenLimit) ??
    numberParam(body, 'max_tokens', 'max_tokens', tokenLimit);

  const request: ChatRequest = {
    question,
    images,
    maxTokens,
    temperature: numberParam(body, 'temperature', 'temperature', { min: 0, max: 2 }),
    topP: numberParam(body, 'top_p', 'top_p', { min: 0, max: 1, exclusiveMin: true }),
    seed: numberParam(body, 'seed', 'seed', { min: 0, max: 0xffffffff, int: true }),
    stream: body.stream === true,
    includeUsage,
  };
  const { sieve } = body;
  if (sieve !== undefined && sieve !== null) {
    if (!isObject(sieve)) throw bad('sieve must be an object such as {"camera": "door", "window_s": 10}', 'sieve');
    const unknown = Object.keys(sieve).filter((k) => !SIEVE_KEYS.includes(k));
    if (unknown.length > 0) {
      throw bad(`sieve.${unknown[0]} is not a key of sieve: give ${SIEVE_KEYS.join(', ')}`, `sieve.${unknown[0]}`);
    }
    if (sieve.camera !== undefined) {
      if (typeof sieve.camera !== 'string' || sieve.camera === '') {
        throw bad('sieve.camera must be the name of a camera of the pipeline', 'sieve.camera');
      }
      request.camera = sieve.camera;
    }
    request.windowS = numberParam(sieve, 'window_s', 'sieve.window_s', { min: 0, max: 86_400, exclusiveMin: true });
    request.maxFrames = numberParam(sieve, 'max_frames', 'sieve.max_frames', { min: 1, max: MAX_FRAMES, int: true });
    request.budget = numberParam(sieve, 'budget', 'sieve.budget', { min: 0, max: 1, exclusiveMin: true });
    const deadlineS = numberParam(sieve, 'deadline_s', 'sieve.deadline_s', { min: 0, max: 86_400, exclusiveMin: true });
    if (deadlineS !== undefined) request.deadlineMs = deadlineS * 1000;
    if (sieve.method !== undefined) {
      if (typeof sieve.method !== 'string') throw bad('sieve.method must be a pruning method name', 'sieve.method');
      try {
        defaultBudget(sieve.method);
      } catch (err) {
        throw bad(withHint(err as SieveError), 'sieve.method', 'invalid_method');
      }
      request.method = sieve.method;
    }
  }
  return request;
}

/** The bytes of a base64 data: URL of an image. */
function decodeDataUrl(url: string, param: string): Buffer {
  const match = /^data:([^;,]*)((?:;[^;,]*)*),/i.exec(url);
  if (!match) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
    throw bad(
      `${param}: ${scheme ? `${scheme}: URLs are not fetched` : 'not a URL'}; ` +
        'send the image itself as a data URL, data:image/png;base64,… (PNG, JPEG or WebP)',
      param,
      'invalid_image_url',
    );
  }
  if (!match[2].toLowerCase().split(';').includes('base64')) {
    throw bad(`${param}: the data URL is not base64: use data:image/png;base64,…`, param, 'invalid_image_url');
  }
  const data = url.slice(match[0].length).replace(/\s+/g, '');
  if (data === '') throw bad(`${param}: the data URL holds no image`, param, 'invalid_image_url');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 === 1) {
    throw bad(`${param}: the data URL's base64 is broken`, param, 'invalid_image_url');
  }
  return Buffer.from(data, 'base64');
}

/** Whether the header names an image sharp can read, of a size the daemon takes; the pixels are read later. */
async function checkImage(image: { bytes: Buffer; param: string }): Promise<number> {
  let meta: Metadata;
  try {
    meta = await sharp(image.bytes).metadata();
  } catch (err) {
    throw bad(
      `${image.param}: not a readable image (${(err as Error).message}); send a PNG, JPEG or WebP`,
      image.param,
      'image_unreadable',
    );
  }
  if (!meta.format || !IMAGE_FORMATS.includes(meta.format)) {
    throw bad(`${image.param}: a ${meta.format} image; send a PNG, JPEG or WebP`, image.param, 'image_unreadable');
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > MAX_IMAGE_PIXELS) {
    throw bad(
      `${image.param}: ${meta.width}×${meta.height} is more than ${MAX_IMAGE_PIXELS / 1e6} megapixels; ` +
        'scale it down (the model sees a few hundred pixels a side)',
      image.param,
      'image_too_large',
    );
  }
  return pixels;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** The `sieve` provenance of an answer about images. */
function imageProvenance(answer: Answer, prune: PruneRequest, latency: Record<string, number>, model: string) {
  return {
    images: answer.frames.length,
    frames: answer.frames.map((f) => ({ t: f.timestampS })),
    method: prune.method,
    budget: prune.budget,
    tokens: answerTokens(answer),
    latency_ms: latency,
    memory: {
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
      kv_reserved_bytes: answer.memory.kvReservedBytes,
      kv_used_bytes: answer.memory.kvUsedBytes,
    },
    model,
  };
}

/** What a chat completion answered, whatever it was about. */
interface Completion {
  content: string;
  finishReason: 'stop' | 'length';
  promptTokens: number;
  completionTokens: number;
  visual: { input: number; kept: number };
  sieve: Record<string, unknown>;
}

/** A chat.completion.chunk SSE stream; headers go out with the first token, so errors before it keep their status. */
class SseReply {
  private started = false;
  readonly id = `chatcmpl-${randomBytes(12).toString('hex')}`;
  readonly created = Math.floor(Date.now() / 1000);

  constructor(
    private readonly res: ServerResponse,
    private readonly model: string,
  ) {}

  get headersSent(): boolean {
    return this.started;
  }

  private chunk(extra: Record<string, unknown>): void {
    const base = { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model };
    this.res.write(`data: ${JSON.stringify({ ...base, ...extra })}\n\n`);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
    this.chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
  }

  text(delta: string): void {
    this.start();
    this.chunk({ choices: [{ index: 0, delta: { content: delta }, finish_reason: null }] });
  }

  finish(c: Completion, includeUsage: boolean): void {
    this.start();
    const usage = usageOf(c);
    this.chunk({ choices: [{ index: 0, delta: {}, finish_reason: c.finishReason }], sieve: c.sieve });
    if (includeUsage) this.chunk({ choices: [], usage });
    this.res.end('data: [DONE]\n\n');
  }

  /** An error after the stream started: an error event, then the end of the stream. */
  error(err: ApiError): void {
    this.res.end(`data: ${JSON.stringify(err.body())}\n\n`);
  }
}

function usageOf(c: Completion) {
  return {
    prompt_tokens: c.promptTokens,
    completion_tokens: c.completionTokens,
    total_tokens: c.promptTokens + c.completionTokens,
  };
}

/** Splits host:port (IPv6 in brackets: [::1]:8080). */
export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen.trim());
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || port > 65_535) {
    throw new UsageError(
      `http.listen "${listen}" is not host:port`,
      'e.g. 127.0.0.1:8080 (loopback), 0.0.0.0:8080 (every interface) or [::1]:8080',
    );
  }
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}

/** The daemon's HTTP server. */
export class HttpSurface {
  /** Requests being handled; close() waits for them. */
  private readonly inFlight = new Set<Promise<void>>();
  readonly modelId: string;
  private readonly tokenHash?: Buffer;

  private constructor(
    private readonly daemon: Daemon,
    private readonly server: Server,
    private readonly options: HttpSurfaceOptions,
  ) {
    this.modelId = basename(daemon.model.checkpoint.dir);
    if (options.token !== undefined) this.tokenHash = sha256(options.token);
  }

  /** Listens on options.listen; fails with a UsageError naming the address when it cannot. */
  static async start(daemon: Daemon, options: HttpSurfaceOptions): Promise<HttpSurface> {
    const { host, port } = parseListen(options.listen);
    const server = createServer({ keepAliveTimeout: 5000 });
    const surface = new HttpSurface(daemon, server, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => surface.track(req, res));
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      // Expect: 100-continue (curl sends it for bodies over 1 MB): a body over the limit is refused unread.
      if (!(Number(req.headers['content-length']) > options.maxBodyBytes)) res.writeContinue();
      surface.track(req, res);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Unparseable HTTP: a bare 400 if the socket can still take it.
      if (socket.writable && err.code !== 'ECONNRESET') {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      } else socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) =>
        reject(
          new UsageError(
            `cannot listen on ${options.listen}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.message}`,
            'give another address in the pipeline (http.listen) or with --http host:port',
          ),
        );
      server.once('error', failed);
      server.listen(port, host, () => {
        server.off('error', failed);
        resolve();
      });
    });
    return surface;
  }

  /** The address it listens on (the real port when 0 was asked). */
  get address(): { host: string; port: number; url: string } {
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return { host: a.address, port: a.port, url: `http://${host}:${a.port}` };
  }

  /**
   * Stops listening and waits for the requests being handled to get their reply (queries still queued
   * are answered "shutting down" when the daemon stops its scheduler), then closes idle connections.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await Promise.allSettled([...this.inFlight]);
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), 2000);
    await closed;
    clearTimeout(timer);
  }

  private track(req: IncomingMessage, res: ServerResponse): void {
    res.on('error', () => undefined); // a client gone mid-reply is not the daemon's problem
    const handled = this.handle(req, res).catch((err: unknown) => {
      this.options.log(`${new Date().toISOString()} http: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) res.destroy();
    });
    this.inFlight.add(handled);
    void handled.finally(() => this.inFlight.delete(handled));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrived = performance.now();
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0];
    const route = ROUTES.find((r) => r.path.test(path));
    let sse: SseReply | undefined;
    try {
      this.authorize(req);
      if (!route) {
        throw new ApiError(
          404,
          `no route ${method} ${path.slice(0, 200)}: the API has POST /v1/chat/completions, GET /v1/models, ` +
            'GET /health and GET /metrics',
          'unknown_url',
        );
      }
      if (!route.methods.includes(method)) {
        throw new ApiError(
          405,
          `${path} takes ${route.methods.join(' or ')}, not ${method}`,
          'method_not_allowed',
          null,
          {
            allow: route.methods.join(', '),
          },
        );
      }
      if (route.name === 'health') return this.json(res, 200, this.health());
      if (route.name === 'metrics') return await this.metrics(res);
      if (route.name === 'models') return this.json(res, 200, { object: 'list', data: [this.modelCard()] });
      if (route.name === 'model') {
        const id = path.slice('/v1/models/'.length);
        if (id !== encodeURIComponent(this.modelId)) throw this.modelNotFound(id, null);
        return this.json(res, 200, this.modelCard());
      }
      const request = await this.readChatRequest(req);
      if (request.stream) sse = new SseReply(res, this.modelId);
      let gone = false;
      res.on('close', () => {
        gone = !res.writableFinished;
      });
      const completion = await this.complete(
        req,
        request,
        arrived,
        (delta) => sse?.text(delta),
        () => gone,
      );
      if (sse) sse.finish(completion, request.includeUsage);
      else this.json(res, 200, this.completionBody(completion));
    } catch (err) {
      const reply = apiErrorOf(err);
      if (reply.status === 500) {
        this.options.log(`${new Date().toISOString()} http: ${method} ${path}: ${reply.message}`);
      }
      if (route?.name === 'chat') this.options.metrics?.countReply(SURFACE, outcomeOf(reply));
      if (sse?.headersSent) sse.error(reply);
      else if (!res.headersSent) this.json(res, reply.status, reply.body(), reply.headers);
    } finally {
      this.options.metrics?.countRequest(route?.name ?? 'unknown', res.statusCode);
    }
  }

  private authorize(req: IncomingMessage): void {
    if (!this.tokenHash) return;
    const header = req.headers.authorization;
    const bearer = header && /^Bearer\s+(.+)$/i.exec(header.trim())?.[1];
    const challenge = { 'www-authenticate': 'Bearer' };
    if (!bearer) {
      throw new ApiError(
        401,
        'no bearer token: send the header Authorization: Bearer <token> (http.token of the pipeline)',
        'missing_api_key',
        null,
        challenge,
      );
    }
    if (!timingSafeEqual(sha256(bearer), this.tokenHash)) {
      throw new ApiError(401, 'wrong bearer token: use http.token of the pipeline', 'invalid_api_key', null, challenge);
    }
  }

  private async readChatRequest(req: IncomingMessage): Promise<ChatRequest> {
    const type = req.headers['content-type'];
    if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
      throw new ApiError(
        415,
        `the body is ${type.slice(0, 100)}; send JSON with the header Content-Type: application/json`,
        'unsupported_media_type',
      );
    }
    const body = await this.readBody(req);
    if (body.length === 0) throw bad('the body is empty: send a JSON object with messages', null, 'invalid_json');
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw bad(
        `the body is not valid JSON (${(err as Error).message.slice(0, 200)}); send a JSON object with messages`,
        null,
        'invalid_json',
      );
    }
    const request = parseChatRequest(json, 4096);
    if (isObject(json) && json.model !== undefined && json.model !== this.modelId) {
      throw this.modelNotFound(json.model, 'model');
    }
    return request;
  }

  /** The body, refused with 413 as soon as it passes the limit (declared or read so far). */
  private readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.options.maxBodyBytes;
    const tooLarge = (size: string) =>
      new ApiError(
        413,
        `the body is ${size}, more than the limit of ${formatMb(limit)}; send fewer or smaller images ` +
          '(or raise http.max_body_mb in the pipeline)',
        'payload_too_large',
      );
    // Whatever is left of a refused body is read and dropped (so the client gets the reply) up to a point.
    const drain = () => {
      let dropped = 0;
      req.on('data', (chunk: Buffer) => {
        dropped += chunk.length;
        if (dropped > DRAIN_AFTER_413) req.socket.destroy();
      });
    };
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      drain();
      return Promise.reject(tooLarge(formatMb(declared)));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size <= limit) {
          chunks.push(chunk);
          return;
        }
        req.off('data', onData);
        chunks.length = 0;
        drain();
        reject(tooLarge(`over ${formatMb(limit)}`));
      };
      req.on('data', onData);
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', (err) => reject(bad(`the body could not be read: ${err.message}`, null)));
      // A client gone before the end of its body (after 'end' this changes nothing: the body is read).
      req.on('close', () => reject(bad('the connection closed before the end of the body', null)));
    });
  }

  /** Answers a checked request through the scheduler: about a camera's window, or about its images. */
  private async complete(
    req: IncomingMessage,
    r: ChatRequest,
    arrived: number,
    onText: (delta: string) => void,
    gone: () => boolean,
  ): Promise<Completion> {
    const { daemon } = this;
    const client = this.clientOf(req);
    const g = daemon.pipeline.generation;
    const maxNewTokens = r.maxTokens ?? g.max_new_tokens;
    let firstToken: number | undefined;
    const streamText = (delta: string) => {
      firstToken ??= performance.now();
      onText(delta);
    };
    const cameras = [...daemon.cameras.keys()];
    this.checkQuestion(r.question);
    let completion: Completion;
    let kind: 'camera' | 'images';
    if (r.images.length > 0) {
      kind = 'images';
      if (r.camera !== undefined) {
        throw bad(
          'both images and sieve.camera: a question is about the images sent or about a camera, not both',
          'sieve.camera',
        );
      }
      for (const key of ['windowS', 'maxFrames'] as const) {
        if (r[key] !== undefined) {
          const name = key === 'windowS' ? 'window_s' : 'max_frames';
          throw bad(`sieve.${name} is about a camera's window: give sieve.camera, or leave it out`, `sieve.${name}`);
        }
      }
      if (r.budget !== undefined && r.method === undefined) {
        throw bad('sieve.budget without sieve.method: name the pruning method too', 'sieve.budget');
      }
      completion = await this.completeImages(r, client, maxNewTokens, arrived, streamText, gone);
    } else {
      kind = 'camera';
      if (r.camera === undefined) {
        throw bad(
          'no images and no camera: add image_url parts (data: URLs) to the last user message, or ask about ' +
            `a camera with "sieve": {"camera": "<name>"} (cameras: ${cameras.join(', ') || 'none'})`,
          'sieve.camera',
          'missing_input',
        );
      }
      const stream = daemon.cameras.get(r.camera);
      if (!stream) {
        throw new ApiError(
          404,
          `unknown camera "${r.camera.slice(0, 100)}": the pipeline's cameras are ${cameras.join(', ') || 'none'}`,
          'camera_not_found',
          'sieve.camera',
        );
      }
      if (stream.window.size === 0) {
        throw new ApiError(
          503,
          `camera ${r.camera} has no frames yet (its source is ${stream.status().source.state}); ask again shortly`,
          'camera_not_ready',
          'sieve.camera',
          { 'retry-after': '2' },
        );
      }
      this.fit(r.question, 1, maxNewTokens); // the question alone must fit: said at once, before queueing
      const answer = await daemon.ask(
        r.camera,
        {
          question: r.question,
          windowS: r.windowS,
          maxFrames: r.maxFrames,
          method: r.method,
          budget: r.budget,
          maxNewTokens,
          temperature: r.temperature,
          topP: r.topP,
          seed: r.seed,
          onText: streamText,
        },
        { client, deadlineMs: r.deadlineMs },
      );
      completion = cameraCompletion(answer, maxNewTokens, this.modelId);
    }
    const done = performance.now();
    this.options.metrics?.observeQuery({
      surface: SURFACE,
      kind,
      ttftS: ((firstToken ?? done) - arrived) / 1000,
      latencyS: (done - arrived) / 1000,
      visualTokens: completion.visual,
    });
    this.options.metrics?.countReply(SURFACE, 'answer');
    return completion;
  }

  private async completeImages(
    r: ChatRequest,
    client: string,
    maxNewTokens: number,
    arrived: number,
    onText: (delta: string) => void,
    gone: () => boolean,
  ): Promise<Completion> {
    const { daemon } = this;
    let pixels = 0;
    for (const image of r.images) pixels += await checkImage(image);
    if (pixels > MAX_REQUEST_PIXELS) {
      throw bad(
        `the images have ${Math.round(pixels / 1e6)} megapixels in all, more than ${MAX_REQUEST_PIXELS / 1e6}; ` +
          'send fewer or smaller images',
        'messages',
        'image_too_large',
      );
    }
    const fit = this.fit(r.question, r.images.length, maxNewTokens);
    if (fit.frames < r.images.length) {
      throw bad(
        `${r.images.length} images do not fit the model's context of ${fit.context} positions with this question ` +
          `and ${maxNewTokens} answer tokens: at most ${fit.frames}; send fewer images (or lower max_tokens)`,
        'messages',
        'context_length_exceeded',
      );
    }
    const g = daemon.pipeline.generation;
    const sampling = { temperature: r.temperature ?? g.temperature, topP: r.topP ?? g.top_p, seed: r.seed ?? g.seed };
    const method = r.method ?? 'none';
    const prune: PruneRequest = { method, budget: r.budget ?? defaultBudget(method), options: {}, seed: sampling.seed };
    const submitted = performance.now();
    return daemon.scheduler.submit({
      client,
      deadlineMs: r.deadlineMs,
      run: async () => {
        const started = performance.now();
        if (gone()) throw new ApiError(499, 'the client closed the connection before its turn', 'client_gone');
        // Decoded only now, one request at a time: a queue of images costs their compressed bytes.
        const frames = [];
        for (const [i, image] of r.images.entries()) {
          try {
            frames.push(await readImage(image.bytes, i));
          } catch (err) {
            if (!(err instanceof MediaError)) throw err;
            throw bad(`${image.param}: ${withHint(err)}`, image.param, 'image_unreadable');
          }
        }
        const decodeMs = performance.now() - started;
        const answer = await daemon.model.answer(frames, r.question, { maxNewTokens, sampling, prune }, onText);
        const t = answer.timings;
        const latency = {
          decode: round1(decodeMs),
          preprocess: round1(t.preprocessMs),
          vision: round1(t.visionMs),
          prefill: round1(t.projectMs + t.prefillMs),
          generate: round1(t.generateMs),
          first_token: round1(t.firstTokenMs),
          queue: round1(started - submitted),
          total: round1(performance.now() - arrived),
        };
        return {
          content: answer.answer,
          finishReason: answer.finishReason === 'length' ? 'length' : 'stop',
          promptTokens: answer.promptTokens,
          completionTokens: answer.generatedTokens,
          visual: { input: answer.visualTokens.input, kept: answer.visualTokens.layerAveraged },
          sieve: imageProvenance(answer, prune, latency, this.modelId),
        } satisfies Completion;
      },
    });
  }

  /**
   * A question the prompt cannot hold: longer than 8 characters per position of the context (refused before
   * it is tokenized, which would hold up every other request), or with the model's image placeholder in it.
   */
  private checkQuestion(question: string): void {
    const { config } = this.daemon.model.checkpoint;
    const maxChars = Math.max(4096, 8 * config.text.maxPositionEmbeddings);
    if (question.length > maxChars) {
      throw bad(
        `the question is ${question.length} characters, more than the ${maxChars} this model's context ` +
          `(${config.text.maxPositionEmbeddings} positions) can take; shorten it`,
        'messages',
        'context_length_exceeded',
      );
    }
    const placeholder = placeholderIn(this.daemon.model.checkpoint, question);
    if (!placeholder) return;
    throw bad(
      `the question contains ${placeholder}, the model's image placeholder; remove it ` +
        '(images go in image_url parts)',
      'messages',
      'invalid_question',
    );
  }

  /** How many of `frames` frames fit the context with this question and answer length (400 when not one). */
  private fit(question: string, frames: number, maxNewTokens: number) {
    try {
      return fitFramesToContext(this.daemon.model.checkpoint, question, frames, maxNewTokens, (k) =>
        Array.from({ length: k }, (_, i) => i),
      );
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      throw bad(`${err.message}; shorten the question or lower max_tokens`, 'messages', 'context_length_exceeded');
    }
  }

  /** Who asks, for the scheduler's turns: the bearer token when there is one, else the remote address. */
  private clientOf(req: IncomingMessage): string {
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization?.trim() ?? '')?.[1];
    if (bearer) return `http:token:${sha256(bearer).toString('hex').slice(0, 16)}`;
    return `http:${req.socket.remoteAddress ?? 'unknown'}`;
  }

  private completionBody(c: Completion) {
    return {
      id: `chatcmpl-${randomBytes(12).toString('hex')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: this.modelId,
      choices: [
        { index: 0, message: { role: 'assistant', content: c.content }, logprobs: null, finish_reason: c.finishReason },
      ],
      usage: usageOf(c),
      sieve: c.sieve,
    };
  }

  private modelNotFound(model: unknown, param: string | null): ApiError {
    const name = typeof model === 'string' ? `"${model.slice(0, 100)}"` : JSON.stringify(model)?.slice(0, 100);
    return new ApiError(
      404,
      `the model ${name} does not exist here: this daemon serves "${this.modelId}" (GET /v1/models)`,
      'model_not_found',
      param,
    );
  }

  private modelCard() {
    return { id: this.modelId, object: 'model', created: 0, owned_by: 'vlm-sieve' };
  }

  private health() {
    const stats = this.daemon.scheduler.stats();
    return {
      status: 'ok',
      model: this.modelId,
      cameras: this.daemon.status().map((s) => ({
        name: s.camera,
        state: s.source.state,
        window_frames: s.window.frames,
        window_s: s.window.span_s,
        reconnects: s.source.reconnects,
      })),
      queue: { depth: stats.depth, running: stats.running },
    };
  }

  private async metrics(res: ServerResponse): Promise<void> {
    const { metrics } = this.options;
    if (!metrics) throw new ApiError(404, 'metrics are not collected by this server', 'unknown_url');
    const { contentType, body } = await metrics.render();
    res.writeHead(200, { 'content-type': contentType });
    res.end(body);
  }

  private json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }
}

const ROUTES: { name: string; path: RegExp; methods: string[] }[] = [
  { name: 'chat', path: /^\/v1\/chat\/completions\/?$/, methods: ['POST'] },
  // HEAD as GET without the body (Node leaves it out), for health checks such as curl -I.
  { name: 'models', path: /^\/v1\/models\/?$/, methods: ['GET', 'HEAD'] },
  { name: 'model', path: /^\/v1\/models\/[^/]+$/, methods: ['GET', 'HEAD'] },
  { name: 'health', path: /^\/health\/?$/, methods: ['GET', 'HEAD'] },
  { name: 'metrics', path: /^\/metrics\/?$/, methods: ['GET', 'HEAD'] },
];

function cameraCompletion(a: WindowAnswer, maxNewTokens: number, model: string): Completion {
  // Generation stops at EOS (not counted) or after maxNewTokens tokens: that many generated means the limit.
  const { model: _model, ...provenance } = a;
  return {
    content: a.answer,
    finishReason: a.tokens.generated >= maxNewTokens ? 'length' : 'stop',
    promptTokens: a.tokens.prompt,
    completionTokens: a.tokens.generated,
    visual: { input: a.tokens.visual_input, kept: a.tokens.visual_layer_averaged },
    sieve: {
      camera: a.camera,
      frames: a.frames,
      frames_left_out: a.framesLeftOut,
      method: a.method,
      budget: a.budget,
      tokens: provenance.tokens,
      latency_ms: provenance.latency_ms,
      memory: provenance.memory,
      model,
    },
  };
}

function outcomeOf(err: ApiError): string {
  return err.status >= 500 ? err.code : 'bad_request';
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function formatMb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 1)} MB`;
}

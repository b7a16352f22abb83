import { z } from 'zod';
import { SieveError, UsageError } from '../errors.js';
import { MAX_FRAMES } from '../media/frame.js';
import { METHOD_NAMES } from '../prune/registry.js';
import type { WindowAnswer, WindowQuery } from './daemon.js';
import { BusyError, DeadlineError, ShuttingDownError } from './query-scheduler.js';

/** Query payloads larger than this are refused unread: a query is a question, not media. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
/** Longer questions are refused before they are tokenized (the model's context may refuse shorter ones). */
export const MAX_QUESTION_CHARS = 4096;
const MAX_ID_CHARS = 256;

/** What kind of error a reply carries, for programs; `error` and `hint` are for people. */
export type ErrorCode =
  | 'bad_request'
  | 'too_large'
  | 'unknown_camera'
  | 'busy'
  | 'deadline'
  | 'shutting_down'
  | 'failed';

export type QueryId = string | number | null;

/** The reply to a query that was not answered: `{id, camera, error, hint?}`, with a code. */
export interface ErrorReply {
  id: QueryId;
  camera: string;
  error: string;
  hint?: string;
  code: ErrorCode;
  /** With `busy`: when to ask again. */
  retry_after_s?: number;
}

/** The reply to an answered query: the answer and its provenance. */
export interface AnswerReply {
  id: QueryId;
  camera: string;
  question: string;
  answer: string;
  frames: WindowAnswer['frames'];
  frames_left_out: number;
  method: string;
  budget: number;
  tokens: WindowAnswer['tokens'];
  latency_ms: WindowAnswer['latency_ms'];
  memory: WindowAnswer['memory'];
  model: string;
}

export type ParsedQuery = { ok: true; id: QueryId; query: WindowQuery } | { ok: false; reply: ErrorReply };

const QUERY_KEYS = ['id', 'question', 'window_s', 'max_frames', 'method', 'budget'];
const EXAMPLE = '{"id": "1", "question": "what colour is the circle?"}';

const querySchema = z
  .object({
    question: z
      .string({ error: expected('question', 'a string') })
      .trim()
      .min(1, 'the question is empty')
      .max(MAX_QUESTION_CHARS, `the question is longer than ${MAX_QUESTION_CHARS} characters`),
    window_s: z
      .number({ error: expected('window_s', 'a number of seconds') })
      .positive('window_s must be more than 0 seconds')
      .max(86_400, 'window_s is more than a day')
      .optional(),
    max_frames: z
      .number({ error: expected('max_frames', 'a whole number') })
      .int('max_frames must be a whole number')
      .min(1, 'max_frames must be at least 1')
      .max(MAX_FRAMES, `max_frames must be at most ${MAX_FRAMES}`)
      .optional(),
    method: z
      .string({ error: expected('method', 'a string') })
      .refine((m) => METHOD_NAMES.includes(m), { error: (i) => `unknown pruning method ${JSON.stringify(i.input)}` })
      .optional(),
    budget: z
      .number({ error: expected('budget', 'a number in (0, 1]') })
      .gt(0, 'budget must be more than 0')
      .max(1, 'budget must be at most 1 (the fraction of visual tokens kept)')
      .optional(),
  })
  .strict();

/**
 * Reads a query published on `<prefix>/<camera>/query`: size, UTF-8, JSON, the camera and every key are
 * checked, in that order, and the first problem becomes an error reply naming it (with the query's id when
 * it could be read).
 */
export function parseQuery(payload: Uint8Array, camera: string, cameras: readonly string[]): ParsedQuery {
  const refuse = (error: string, hint: string | undefined, code: ErrorCode = 'bad_request', id: QueryId = null) => ({
    ok: false as const,
    reply: { id, camera, error, ...(hint ? { hint } : {}), code },
  });
  if (payload.byteLength > MAX_PAYLOAD_BYTES) {
    return refuse(
      `the payload is ${payload.byteLength} bytes, over the limit of ${MAX_PAYLOAD_BYTES} (${MAX_PAYLOAD_BYTES / 1024} KiB)`,
      `a query is a JSON object such as ${EXAMPLE}; it is about the camera's window and carries no media`,
      'too_large',
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    return refuse('the payload is not UTF-8 text (binary data?)', `send a JSON object such as ${EXAMPLE}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return refuse(
      `the payload is not valid JSON: ${reason.length > 200 ? `${reason.slice(0, 200)}…` : reason}`,
      `send a JSON object such as ${EXAMPLE}`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return refuse(
      `the payload must be a JSON object {id, question, …}, not ${Array.isArray(value) ? 'an array' : describe(value)}`,
      `send a JSON object such as ${EXAMPLE}`,
    );
  }
  const { id: rawId, ...rest } = value as Record<string, unknown>;
  const id = readId(rawId);
  if (id === undefined) {
    return refuse(
      `id must be a string of at most ${MAX_ID_CHARS} characters or a number, not ${describe(rawId)}`,
      'the id is echoed in the reply so that you can match the two; any string or number will do',
    );
  }
  if (!cameras.includes(camera)) {
    return refuse(`unknown camera "${camera}"`, `cameras: ${cameras.join(', ') || 'none'}`, 'unknown_camera', id);
  }
  const parsed = querySchema.safeParse(rest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => `"${k}"`).join(', ');
      return refuse(
        `unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}`,
        `a query has ${QUERY_KEYS.join(', ')}`,
        'bad_request',
        id,
      );
    }
    return refuse(issue.message, hintFor(issue.path.join('.')), 'bad_request', id);
  }
  const q = parsed.data;
  return {
    ok: true,
    id,
    query: {
      question: q.question,
      ...(q.window_s !== undefined ? { windowS: q.window_s } : {}),
      ...(q.max_frames !== undefined ? { maxFrames: q.max_frames } : {}),
      ...(q.method !== undefined ? { method: q.method } : {}),
      ...(q.budget !== undefined ? { budget: q.budget } : {}),
    },
  };
}

/** The reply to an answered query. */
export function answerReply(id: QueryId, a: WindowAnswer): AnswerReply {
  return {
    id,
    camera: a.camera,
    question: a.question,
    answer: a.answer,
    frames: a.frames,
    frames_left_out: a.framesLeftOut,
    method: a.method,
    budget: a.budget,
    tokens: a.tokens,
    latency_ms: a.latency_ms,
    memory: a.memory,
    model: a.model,
  };
}

/** The reply to a query that failed: busy, past its deadline, shutting down, refused, or failed while it ran. */
export function errorReply(id: QueryId, camera: string, err: unknown): ErrorReply {
  const message = err instanceof Error ? err.message : String(err);
  const hint = err instanceof SieveError ? err.hint : 'the daemon logged the error';
  const base = { id, camera, error: message, ...(hint ? { hint } : {}) };
  if (err instanceof BusyError) return { ...base, code: 'busy', retry_after_s: err.retryAfterS };
  if (err instanceof DeadlineError) return { ...base, code: 'deadline' };
  if (err instanceof ShuttingDownError) return { ...base, code: 'shutting_down' };
  if (err instanceof UsageError) return { ...base, code: 'bad_request' };
  return { ...base, code: 'failed' };
}

/** The message of a wrong type: a missing key is named as missing. */
function expected(key: string, what: string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined ? `${key} is missing` : `${key} must be ${what}, not ${describe(issue.input)}`;
}

function readId(id: unknown): QueryId | undefined {
  if (id === undefined || id === null) return null;
  if (typeof id === 'string' && id.length <= MAX_ID_CHARS) return id;
  if (typeof id === 'number' && Number.isFinite(id)) return id;
  return undefined;
}

function hintFor(key: string): string {
  switch (key) {
    case 'question':
      return `ask about the camera's window, e.g. ${EXAMPLE}`;
    case 'method':
      return `valid methods: ${METHOD_NAMES.join(', ')}`;
    case 'budget':
      return 'the fraction of visual tokens kept, e.g. 0.25; leave it out for the default of the method';
    case 'window_s':
      return 'the last seconds of the window the question is about; leave it out for all of it';
    case 'max_frames':
      return 'the most frames the answer may use; leave it out for as many as the window holds';
    default:
      return `a query has ${QUERY_KEYS.join(', ')}`;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length > 40 ? 'a long string' : `the string ${JSON.stringify(value)}`;
  if (typeof value === 'object') return 'an object';
  return `the ${typeof value} ${String(value)}`;
}

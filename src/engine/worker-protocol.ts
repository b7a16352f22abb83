import { ModelError, SieveError } from '../errors.js';
import type { VisualAnswer } from './visual-query.js';

export interface SerializedError {
  name: string;
  message: string;
  hint?: string;
  exitCode?: 1 | 2;
  stack?: string;
}

export type WorkerReply =
  | { type: 'opened' }
  | { type: 'closed' }
  | { type: 'token'; id: number; token: number }
  | { type: 'answer'; id: number; answer: VisualAnswer }
  | { type: 'error'; id?: number; error: SerializedError };

export function serializeError(err: unknown): SerializedError {
  if (err instanceof SieveError)
    return { name: err.name, message: err.message, hint: err.hint, exitCode: err.exitCode };
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name, message: e.message, stack: e.stack };
}

/** Rebuilds a worker's error on the main thread: user errors stay user errors. */
export function deserializeError(e: SerializedError): Error {
  if (e.hint !== undefined || e.exitCode !== undefined) {
    return e.name === 'ModelError'
      ? new ModelError(e.message, e.hint)
      : new SieveError(e.message, e.hint, e.exitCode ?? 1);
  }
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack) err.stack = e.stack;
  return err;
}

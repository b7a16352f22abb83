import { ModelError, SieveError } from '../errors.js';
import type { GraphManifest } from '../onnx/convert.js';
import type { RuntimeOptions } from './ort-session.js';
import type { VisionInput } from './vision-input.js';
import type { VisualAnswer, VisualQuery } from './visual-query.js';
import type { VisionOutputs } from './vlm-runner.js';

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
  | { type: 'encoded'; id: number; vision: VisionOutputs }
  | { type: 'error'; id?: number; error: SerializedError };

/** What the main thread asks of the worker. */
export type WorkerRequest =
  | { type: 'open'; dir: string; manifest: GraphManifest; runtime: RuntimeOptions; warmKernels: boolean }
  | { type: 'query'; id: number; query: VisualQuery }
  | { type: 'encode'; id: number; vision: VisionInput }
  | { type: 'close' };

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

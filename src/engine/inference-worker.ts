import { parentPort } from 'node:worker_threads';
import { UsageError } from '../errors.js';
import type { GraphManifest } from '../onnx/convert.js';
import type { RuntimeOptions } from './ort-session.js';
import { runVisualQuery, type VisualQuery } from './visual-query.js';
import { VlmRunner } from './vlm-runner.js';
import { serializeError, type WorkerReply } from './worker-protocol.js';

/**
 * The inference thread: ONNX Runtime's `run` blocks its thread for the whole computation, so sessions
 * live here and the main thread stays free for I/O, streaming and other requests.
 */
const port = parentPort;
if (!port) throw new Error('inference-worker must run as a worker thread');

let runner: VlmRunner | undefined;
const reply = (msg: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

port.on('message', async (msg: { type: 'open'; dir: string; manifest: GraphManifest; runtime: RuntimeOptions } | { type: 'query'; id: number; query: VisualQuery } | { type: 'close' }) => {
  try {
    if (msg.type === 'open') {
      runner = await VlmRunner.open(msg.dir, msg.manifest, msg.runtime);
      reply({ type: 'opened' });
    } else if (msg.type === 'query') {
      if (!runner) throw new Error('query before open');
      if (msg.query.prune && msg.query.prune.method !== 'none') throw new UsageError(`pruning method ${msg.query.prune.method} is not available in this build`, 'use --method none');
      const answer = await runVisualQuery(runner, msg.query, undefined, undefined, (token) => reply({ type: 'token', id: msg.id, token }));
      reply({ type: 'answer', id: msg.id, answer });
    } else {
      await runner?.release();
      runner = undefined;
      reply({ type: 'closed' });
    }
  } catch (err) {
    reply({ type: 'error', id: 'id' in msg ? msg.id : undefined, error: serializeError(err) });
  }
});

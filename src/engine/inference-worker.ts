import { parentPort } from 'node:worker_threads';
import { ModelError } from '../errors.js';
import { createMethod } from '../prune/registry.js';
import type { PruneMethod } from '../prune/types.js';
import { OrtPairwise } from './pairwise-kernel.js';
import { runVisualQuery, type VisualQuery } from './visual-query.js';
import { VlmRunner } from './vlm-runner.js';
import { serializeError, type WorkerReply, type WorkerRequest } from './worker-protocol.js';

/**
 * The inference thread: ONNX Runtime's `run` blocks its thread for the whole computation, so sessions
 * and pruning math live here and the main thread stays free for I/O, streaming and other requests.
 */
const port = parentPort;
if (!port) throw new Error('inference-worker must run as a worker thread');

let runner: VlmRunner | undefined;
let pairwise: OrtPairwise | undefined;
const reply = (msg: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

/** The query's pruning method, checked against the decoder segments the graphs were built with. */
function methodFor(r: VlmRunner, q: VisualQuery): PruneMethod | undefined {
  if (!q.prune || q.prune.method === 'none') return undefined;
  const cfg = r.manifest.config;
  const method = createMethod(
    q.prune.method,
    {
      budget: q.prune.budget,
      frames: q.frames,
      tokensPerFrame: q.tokensPerFrame,
      numLayers: cfg.text.numLayers,
      seed: q.prune.seed,
    },
    q.prune.options,
  );
  const missing = method.layer
    ? method.layers(cfg.text.numLayers).filter((l) => !r.manifest.boundaries.includes(l))
    : [];
  if (missing.length) {
    const needed = [...new Set([...r.manifest.boundaries, ...missing])].sort((a, b) => a - b);
    throw new ModelError(
      `${q.prune.method} prunes at layer(s) ${missing.join(', ')} ` +
        `but the graphs split the decoder at ${r.manifest.boundaries.join(', ')}`,
      `rebuild them with sieve convert --boundaries ${needed.join(',')}`,
    );
  }
  return method;
}

port.on('message', async (msg: WorkerRequest) => {
  try {
    if (msg.type === 'open') {
      runner = await VlmRunner.open(msg.dir, msg.manifest, msg.runtime);
      pairwise = new OrtPairwise(msg.runtime.threads);
      if (msg.warmKernels) await pairwise.warm();
      reply({ type: 'opened' });
    } else if (msg.type === 'query') {
      if (!runner || !pairwise) throw new Error('query before open');
      const method = methodFor(runner, msg.query);
      const answer = await runVisualQuery(runner, msg.query, method, pairwise, (token) =>
        reply({ type: 'token', id: msg.id, token }),
      );
      reply({ type: 'answer', id: msg.id, answer });
    } else if (msg.type === 'encode') {
      if (!runner) throw new Error('encode before open');
      const vision = await runner.encode(msg.vision);
      reply({ type: 'encoded', id: msg.id, vision }, [
        vision.features.buffer as ArrayBuffer,
        vision.saliency.buffer as ArrayBuffer,
        vision.keys.buffer as ArrayBuffer,
      ]);
    } else {
      await runner?.release();
      runner = undefined;
      reply({ type: 'closed' });
    }
  } catch (err) {
    reply({ type: 'error', id: 'id' in msg ? msg.id : undefined, error: serializeError(err) });
  }
});

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { ExecutionProvider } from './ort-session.js';

/**
 * Run as its own process by measureRuntimeBaseline: the resident size of a process that has loaded what
 * `sieve ask` loads before any model — the pipeline's modules on the main thread, an inference worker
 * with ONNX Runtime, the pruning kernels and one session on the execution provider — printed as JSON.
 */
async function main(ep: ExecutionProvider): Promise<void> {
  await import('./answer-pipeline.js');
  await import('../media/sampler.js');
  const worker = new Worker(new URL(import.meta.url), { workerData: { ep } });
  const error = await new Promise<string | undefined>((resolve) => {
    worker.once('message', (m: { error?: string }) => resolve(m.error));
    worker.once('error', (e) => resolve(e.message));
  });
  await worker.terminate();
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(`${JSON.stringify(error ? { error } : { peakRssBytes })}\n`);
}

async function inWorker(ep: ExecutionProvider): Promise<void> {
  const { encodeInMemory, OrtPairwise } = await import('./pairwise-kernel.js');
  const { GraphBuilder } = await import('../onnx/graph-builder.js');
  const ort = (await import('onnxruntime-node')).default;
  await new OrtPairwise().warm();
  const g = new GraphBuilder('baseline');
  g.output(g.op('Relu', [g.input('x', 'float32', [1, 'n'])]), 'y', 'float32', [1, 'n']);
  ort.env.logLevel = 'fatal';
  const session = await ort.InferenceSession.create(encodeInMemory(g), {
    executionProviders: ep === 'cpu' ? ['cpu'] : [ep, 'cpu'],
    logSeverityLevel: 4,
  });
  await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, -1), [1, 2]) });
  await session.release();
}

const ep = (process.argv[2] ?? 'cpu') as ExecutionProvider;
if (isMainThread) {
  await main(ep);
} else {
  try {
    await inWorker((workerData as { ep: ExecutionProvider }).ep);
    parentPort?.postMessage({});
  } catch (err) {
    parentPort?.postMessage({ error: (err as Error).message });
  }
}

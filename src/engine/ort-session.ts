import ort from 'onnxruntime-node';
import { ModelError } from '../errors.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'tensorrt';

export interface RuntimeOptions {
  ep: ExecutionProvider;
  /** Intra-op threads; 0 lets ONNX Runtime choose (one per physical core). */
  threads: number;
  /** ONNX Runtime's own warnings and errors on stderr (off: only our messages reach the user). */
  verbose?: boolean;
  /**
   * Pre-pack MatMul weights into the CPU kernels' layout when a session is created (default true). Packing
   * copies every weight (2.3 GB for Qwen2-0.5B in fp32: ~4 s of a ~4.3 s load) and makes each prefill ~10 %
   * faster; unpacked, the weights stay memory-mapped from the graph files and decode is as fast. A one-shot
   * `sieve ask` turns it off; a daemon, which answers many questions, keeps it.
   */
  prepackWeights?: boolean;
}

/** How ONNX Runtime says that an execution provider's shared libraries could not be loaded. */
const MISSING_PROVIDER = /shared library|providers_shared|lib(cudart|cublas|cudnn|nvinfer)|Append.*ExecutionProvider/i;

/** The error for an execution provider whose libraries do not load, when `reason` says that. */
export function missingProvider(ep: ExecutionProvider, reason: string): ModelError | undefined {
  if (ep === 'cpu' || !MISSING_PROVIDER.test(reason)) return undefined;
  return new ModelError(
    `the ${ep} execution provider cannot start: its libraries are missing or do not load (${reason})`,
    '`sieve doctor` lists the providers this ONNX Runtime build has; install the CUDA 12 and cuDNN 9 ' +
      "libraries (docs/jetson.md), run with --verbose for ONNX Runtime's own log, or use --ep cpu",
  );
}

export const DEFAULT_RUNTIME: RuntimeOptions = { ep: 'cpu', threads: 0 };

export async function createSession(path: string, opts: RuntimeOptions): Promise<ort.InferenceSession> {
  // The environment's level decides whether ONNX Runtime prints its own log lines (e.g. a provider library
  // it cannot load); the errors it throws still reach the user through the messages below.
  ort.env.logLevel = opts.verbose ? 'warning' : 'fatal';
  try {
    return await ort.InferenceSession.create(path, {
      executionProviders: opts.ep === 'cpu' ? ['cpu'] : [opts.ep, 'cpu'],
      intraOpNumThreads: opts.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: opts.verbose ? 2 : 4,
      // Every graph (vision, projector, each decoder segment) has its own intra-op pool; spinning pools of
      // idle sessions steal the cores from the one running (unpruned prefill of the demo model: 34 → 19 ms).
      extra: {
        session: {
          intra_op: { allow_spinning: '0' },
          ...(opts.prepackWeights === false ? { disable_prepacking: '1' } : {}),
        },
      },
    });
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0];
    const missing = missingProvider(opts.ep, reason);
    if (missing) throw missing;
    throw new ModelError(
      `cannot load the graph ${path}: ${reason}`,
      'rebuild the graphs with `sieve convert <checkpoint> --force`',
    );
  }
}

export const tensor = {
  f32: (data: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', data, dims),
  i64: (values: ArrayLike<number>, dims: readonly number[]) =>
    new ort.Tensor('int64', BigInt64Array.from(Array.from(values), BigInt), dims),
  i32: (values: ArrayLike<number>, dims: readonly number[]) => new ort.Tensor('int32', Int32Array.from(values), dims),
};

export type Tensor = ort.Tensor;
export type Session = ort.InferenceSession;

import ort from 'onnxruntime-node';
import { ModelError } from '../errors.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'tensorrt';

export interface RuntimeOptions {
  ep: ExecutionProvider;
  /** Intra-op threads; 0 lets ONNX Runtime choose (one per physical core). */
  threads: number;
}

export const DEFAULT_RUNTIME: RuntimeOptions = { ep: 'cpu', threads: 0 };

export async function createSession(path: string, opts: RuntimeOptions): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(path, {
      executionProviders: opts.ep === 'cpu' ? ['cpu'] : [opts.ep, 'cpu'],
      intraOpNumThreads: opts.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      // Every graph (vision, projector, each decoder segment) has its own intra-op pool; spinning pools of
      // idle sessions steal the cores from the one running (unpruned prefill of the demo model: 34 → 19 ms).
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
  } catch (err) {
    throw new ModelError(
      `cannot load the graph ${path}: ${(err as Error).message.split('\n')[0]}`,
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

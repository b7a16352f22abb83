import ort from 'onnxruntime-node';
import { ELEM_TYPE_CODE, GraphBuilder } from '../onnx/graph-builder.js';
import { OPSET } from '../onnx/model-writer.js';
import { encodeModel } from '../onnx/onnx-proto.js';
import type { Pairwise } from '../prune/types.js';

type Kind = 'cosine' | 'euclidean';

/** Rows with a squared norm below this are treated as zero vectors (cosine 0 with everything). */
const MIN_SQUARED_NORM = 1e-24;

/**
 * x [n, d] → [n, n]. Cosine: rows normalised, then x̂·x̂ᵀ. Euclidean: ‖a‖² + ‖b‖² − 2a·b, clamped at 0
 * before the square root (rounding can push the difference of nearly equal rows below zero).
 */
function pairwiseGraph(kind: Kind): GraphBuilder {
  const g = new GraphBuilder(`pairwise_${kind}`);
  const x = g.input('x', 'float32', ['n', 'd']);
  const squared = g.op('ReduceSum', [g.op('Mul', [x, x]), g.int64([1])], { keepdims: 1 });
  let out: string;
  if (kind === 'cosine') {
    const unit = g.op('Div', [x, g.op('Sqrt', [g.op('Max', [squared, g.scalar(MIN_SQUARED_NORM)])])]);
    out = g.op('MatMul', [unit, g.op('Transpose', [unit], { perm: [1, 0] })]);
  } else {
    const gram = g.op('MatMul', [x, g.op('Transpose', [x], { perm: [1, 0] })]);
    const sum = g.op('Add', [squared, g.op('Transpose', [squared], { perm: [1, 0] })]);
    const d2 = g.op('Sub', [sum, g.op('Mul', [gram, g.scalar(2)])]);
    out = g.op('Sqrt', [g.op('Max', [d2, g.scalar(0)])]);
  }
  g.output(out, 'y', 'float32', ['n', 'n']);
  return g;
}

/** The graph as ONNX bytes with its few constants inline: nothing is written to disk. */
function encodeInMemory(g: GraphBuilder): Uint8Array {
  const initializer = g.weights.map((w) => {
    const data = w.produce();
    return {
      name: w.name,
      dims: [...w.dims],
      data_type: ELEM_TYPE_CODE[w.dtype],
      raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(),
    };
  });
  return encodeModel({
    ir_version: 10,
    producer_name: 'vlm-sieve',
    producer_version: '0.1.0',
    opset_import: [{ domain: '', version: OPSET }],
    metadata_props: [],
    graph: { name: g.name, node: g.nodes, initializer, input: g.inputs, output: g.outputs },
  });
}

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function session(kind: Kind, threads: number): Promise<ort.InferenceSession> {
  const key = `${kind}:${threads}`;
  let s = sessions.get(key);
  if (!s) {
    s = ort.InferenceSession.create(encodeInMemory(pairwiseGraph(kind)), {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    sessions.set(key, s);
  }
  return s;
}

/**
 * The Pairwise kernel on ONNX Runtime's CPU MatMul. Sessions are built once per process and shared by
 * every instance with the same thread count.
 */
export class OrtPairwise implements Pairwise {
  /** @param threads intra-op threads; 0 lets ONNX Runtime choose. */
  constructor(private readonly threads = 0) {}

  cosine(x: Float32Array, n: number, d: number): Promise<Float32Array> {
    return this.run('cosine', x, n, d);
  }

  async euclidean(x: Float32Array, n: number, d: number): Promise<Float32Array> {
    const out = await this.run('euclidean', x, n, d);
    // ‖a‖² + ‖a‖² − 2‖a‖² leaves rounding noise of order √(ε·‖a‖²) on the diagonal.
    for (let i = 0; i < n; i++) out[i * n + i] = 0;
    return out;
  }

  private async run(kind: Kind, x: Float32Array, n: number, d: number): Promise<Float32Array> {
    if (x.length !== n * d) throw new RangeError(`pairwise ${kind}: ${x.length} values for [${n}, ${d}]`);
    if (n === 0) return new Float32Array(0);
    const s = await session(kind, this.threads);
    const result = await s.run({ x: new ort.Tensor('float32', x, [n, d]) });
    return result.y.data as Float32Array;
  }
}

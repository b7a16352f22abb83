import ort from 'onnxruntime-node';
import { ELEM_TYPE_CODE, GraphBuilder } from '../onnx/graph-builder.js';
import { OPSET } from '../onnx/model-writer.js';
import { encodeModel } from '../onnx/onnx-proto.js';
import type { Pairwise, Propagation, PropagationOptions } from '../prune/types.js';

type Kind = 'cosine' | 'euclidean';

/** Rows with a squared norm below this are treated as zero vectors (cosine 0 with everything). */
const MIN_SQUARED_NORM = 1e-24;

/** Each row's squared L2 norm, kept as a trailing axis of 1. */
function squaredNorms(g: GraphBuilder, x: string): string {
  return g.op('ReduceSum', [g.op('Mul', [x, x]), g.int64([-1])], { keepdims: 1 });
}

/** Rows scaled to unit length; rows below MIN_SQUARED_NORM stay (near) zero. */
function unitRows(g: GraphBuilder, x: string, squared = squaredNorms(g, x)): string {
  return g.op('Div', [x, g.op('Sqrt', [g.op('Max', [squared, g.scalar(MIN_SQUARED_NORM)])])]);
}

/**
 * x [n, d] → [n, n]. Cosine: rows normalised, then x̂·x̂ᵀ. Euclidean: ‖a‖² + ‖b‖² − 2a·b,
 * clamped at 0 before the square root (rounding can push the difference of nearly equal rows
 * below zero).
 */
function pairwiseGraph(kind: Kind): GraphBuilder {
  const g = new GraphBuilder(`pairwise_${kind}`);
  const x = g.input('x', 'float32', ['n', 'd']);
  const squared = squaredNorms(g, x);
  let out: string;
  if (kind === 'cosine') {
    const unit = unitRows(g, x, squared);
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

/** x [n, d], y [m, d] → cosine [n, m]. */
function crossCosineGraph(): GraphBuilder {
  const g = new GraphBuilder('cross_cosine');
  const x = g.input('x', 'float32', ['n', 'd']);
  const y = g.input('y', 'float32', ['m', 'd']);
  g.output(g.op('MatMul', [unitRows(g, x), g.op('Transpose', [unitRows(g, y)], { perm: [1, 0] })]), 'c', 'float32', [
    'n',
    'm',
  ]);
  return g;
}

/**
 * G-Prune's propagation (methods.md §2) on x [b, n, d]: C = x̂x̂ᵀ; edges where C ≥ threshold plus the
 * self-loop; P = softmax of C/temperature over the edges; I⁰ = ‖x‖; I ← I·P `iterations` times (vector ×
 * matrix, unrolled). Outputs I⁰, I and each token's edge count, all [b, n].
 */
function propagationGraph(iterations: number): GraphBuilder {
  const g = new GraphBuilder(`propagate_${iterations}`);
  const x = g.input('x', 'float32', ['b', 'n', 'd']);
  const threshold = g.input('threshold', 'float32', []);
  const temperature = g.input('temperature', 'float32', []);
  const squared = squaredNorms(g, x);
  const unit = unitRows(g, x, squared);
  const cos = g.op('MatMul', [unit, g.op('Transpose', [unit], { perm: [0, 2, 1] })]);
  const index = g.op('Range', [
    g.int64([0], true),
    g.op('Squeeze', [g.op('Slice', [g.op('Shape', [x]), g.int64([1]), g.int64([2])]), g.int64([0])]),
    g.int64([1], true),
  ]);
  const self = g.op('Equal', [g.op('Unsqueeze', [index, g.int64([1])]), g.op('Unsqueeze', [index, g.int64([0])])]);
  const edge = g.op('Or', [g.op('GreaterOrEqual', [cos, threshold]), self]);
  const logits = g.op('Where', [edge, g.op('Div', [cos, temperature]), g.scalar(-1e30)]);
  const P = g.op('Softmax', [logits], { axis: -1 });
  const initial = g.op('Transpose', [g.op('Sqrt', [squared])], { perm: [0, 2, 1] });
  let information = initial;
  for (let t = 0; t < iterations; t++) information = g.op('MatMul', [information, P]);
  const rows = (v: string) => g.op('Squeeze', [v, g.int64([1])]);
  g.output(rows(initial), 'initial', 'float32', ['b', 'n']);
  g.output(rows(information), 'information', 'float32', ['b', 'n']);
  g.output(g.op('ReduceSum', [g.op('Cast', [edge], { to: 1 }), g.int64([-1])], { keepdims: 0 }), 'degree', 'float32', [
    'b',
    'n',
  ]);
  return g;
}

/** The graph as ONNX bytes with its few constants inline: nothing is written to disk. */
export function encodeInMemory(g: GraphBuilder): Uint8Array {
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

function session(graph: string, build: () => GraphBuilder, threads: number): Promise<ort.InferenceSession> {
  const key = `${graph}:${threads}`;
  let s = sessions.get(key);
  if (!s) {
    s = ort.InferenceSession.create(encodeInMemory(build()), {
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

  /**
   * Creates every kernel's session and runs it once on a tiny input, so that the first pruned query does
   * not pay for it (DivPrune's and G-Prune's first query cost 4× their warm time). Called with the model.
   */
  async warm(): Promise<void> {
    const x = Float32Array.from({ length: 8 }, (_, i) => i + 1);
    await this.cosine(x, 2, 4);
    await this.euclidean(x, 2, 4);
    await this.crossCosine(x, 2, x, 2, 4);
    await this.propagate(x, 1, 2, 4, { threshold: 0.5, temperature: 0.03, iterations: 5 });
  }

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
    const s = await session(kind, () => pairwiseGraph(kind), this.threads);
    const result = await s.run({ x: new ort.Tensor('float32', x, [n, d]) });
    return result.y.data as Float32Array;
  }

  async crossCosine(x: Float32Array, n: number, y: Float32Array, m: number, d: number): Promise<Float32Array> {
    if (x.length !== n * d || y.length !== m * d)
      throw new RangeError(`crossCosine: ${x.length} and ${y.length} values for [${n}, ${d}] and [${m}, ${d}]`);
    if (n * m === 0) return new Float32Array(0);
    const s = await session('cross_cosine', crossCosineGraph, this.threads);
    const result = await s.run({ x: new ort.Tensor('float32', x, [n, d]), y: new ort.Tensor('float32', y, [m, d]) });
    return result.c.data as Float32Array;
  }

  async propagate(
    x: Float32Array,
    batch: number,
    n: number,
    d: number,
    opts: PropagationOptions,
  ): Promise<Propagation> {
    if (x.length !== batch * n * d) throw new RangeError(`propagate: ${x.length} values for [${batch}, ${n}, ${d}]`);
    if (batch * n === 0)
      return { initial: new Float32Array(0), information: new Float32Array(0), degree: new Float32Array(0) };
    const s = await session(`propagate_${opts.iterations}`, () => propagationGraph(opts.iterations), this.threads);
    const result = await s.run({
      x: new ort.Tensor('float32', x, [batch, n, d]),
      threshold: new ort.Tensor('float32', Float32Array.of(opts.threshold), []),
      temperature: new ort.Tensor('float32', Float32Array.of(opts.temperature), []),
    });
    return {
      initial: result.initial.data as Float32Array,
      information: result.information.data as Float32Array,
      degree: result.degree.data as Float32Array,
    };
  }
}

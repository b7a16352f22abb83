import {
  type AttributeMessage,
  AttributeType,
  type Dim,
  type GraphMessage,
  type NodeMessage,
  TensorDataType,
  type ValueInfo,
} from './onnx-proto.js';

export type ElemType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8' | 'int8';
export type Shape = readonly (number | string)[];
export type WeightData = Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;

/**
 * A weight is produced only when the model file is written, one at a time, so building a graph for a
 * multi-gigabyte checkpoint never holds all of its weights in memory.
 */
export interface Weight {
  name: string;
  dtype: ElemType;
  dims: readonly number[];
  produce: () => WeightData;
}

/** A float attribute; plain numbers are integer attributes. */
export interface FloatAttr {
  float: number;
}
/** A graph attribute (an If branch), made by GraphBuilder.subgraph. */
export interface GraphAttr {
  graph: GraphMessage;
}
export type AttrValue = number | readonly number[] | string | FloatAttr | GraphAttr;

/** A value a subgraph returns, with its declared type. */
export interface SubgraphOutput {
  value: string;
  type: ElemType;
  shape: Shape;
}

export const float = (value: number): FloatAttr => ({ float: value });

export const ELEM_TYPE_CODE: Record<ElemType, number> = {
  float32: TensorDataType.FLOAT,
  float16: TensorDataType.FLOAT16,
  int64: TensorDataType.INT64,
  int32: TensorDataType.INT32,
  bool: TensorDataType.BOOL,
  uint8: TensorDataType.UINT8,
  int8: TensorDataType.INT8,
};

export const MS_DOMAIN = 'com.microsoft';

function attribute(name: string, value: AttrValue): AttributeMessage {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    if (!Number.isInteger(value))
      throw new Error(`attribute ${name}=${value} must be an integer; use float() for floats`);
    return { name, type: AttributeType.INT, i: value };
  }
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ('graph' in value) return { name, type: AttributeType.GRAPH, g: value.graph };
  return { name, type: AttributeType.INTS, ints: [...value] };
}

function valueInfo(name: string, type: ElemType, shape: Shape): ValueInfo {
  const dim: Dim[] = shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d }));
  return { name, type: { tensor_type: { elem_type: ELEM_TYPE_CODE[type], shape: { dim } } } };
}

/** A small typed API for writing ONNX graphs: inputs, outputs, weights, constants and nodes. */
export class GraphBuilder {
  readonly nodes: NodeMessage[] = [];
  readonly weights: Weight[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private readonly constants = new Map<string, string>();
  private readonly usedNames = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  private unique(base: string): string {
    let name = base;
    while (this.usedNames.has(name)) name = `${base}_${++this.counter}`;
    this.usedNames.add(name);
    return name;
  }

  /** Reserves a name the caller chose (graph inputs, outputs, weights); two users of one name is a bug. */
  private claim(name: string): string {
    if (this.usedNames.has(name)) throw new Error(`graph ${this.name}: the name ${name} is used twice`);
    this.usedNames.add(name);
    return name;
  }

  input(name: string, type: ElemType, shape: Shape): string {
    this.inputs.push(valueInfo(this.claim(name), type, shape));
    return name;
  }

  /** Declares `value` as a graph output called `name` (adding an Identity when they differ). */
  output(value: string, name: string, type: ElemType, shape: Shape): void {
    if (value !== name) this.op('Identity', [value], {}, { outputs: [name] });
    this.outputs.push(valueInfo(name, type, shape));
  }

  weight(name: string, dtype: ElemType, dims: readonly number[], produce: () => WeightData): string {
    this.weights.push({ name: this.claim(name), dtype, dims, produce });
    return name;
  }

  /** An int64 constant (shapes, axes, indices), shared between all nodes that use the same values. */
  int64(values: readonly number[], scalar = false): string {
    const key = `i64:${scalar ? 's' : 'v'}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      const data = BigInt64Array.from(values.map(BigInt));
      name = this.weight(`const_i64_${this.constants.size}`, 'int64', scalar ? [] : [values.length], () => data);
      this.constants.set(key, name);
    }
    return name;
  }

  /** A float32 scalar constant. */
  scalar(value: number): string {
    const key = `f32:${value}`;
    let name = this.constants.get(key);
    if (!name) {
      const data = Float32Array.of(value);
      name = this.weight(`const_f32_${this.constants.size}`, 'float32', [], () => data);
      this.constants.set(key, name);
    }
    return name;
  }

  /**
   * A subgraph (an If branch): the nodes `build` adds go into it rather than into this graph, and they may
   * read any value of this graph by name. Constants made meanwhile are initializers of this graph, which
   * ONNX lets a subgraph use.
   */
  subgraph(name: string, build: () => readonly SubgraphOutput[]): GraphAttr {
    const first = this.nodes.length;
    const outputs = build();
    const produced = new Set(this.nodes.slice(first).flatMap((n) => n.output));
    const names = outputs.map((o) => (produced.has(o.value) ? o.value : this.op('Identity', [o.value])));
    const node = this.nodes.splice(first);
    return {
      graph: {
        name: this.unique(name),
        node,
        initializer: [],
        input: [],
        output: outputs.map((o, i) => valueInfo(names[i], o.type, o.shape)),
      },
    };
  }

  /** Adds a node with one output and returns the output's name. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; outputs?: readonly string[]; name?: string } = {},
  ): string {
    return this.opN(opType, inputs, attrs, opts.outputs ?? 1, opts)[0];
  }

  /** Adds a node with several outputs (a count for generated names, or explicit names; '' skips one). */
  opN(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue>,
    outputs: number | readonly string[],
    opts: { domain?: string; name?: string } = {},
  ): string[] {
    const nodeName = this.unique(opts.name ?? opType);
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, i) => this.unique(`${nodeName}_out${i}`))
        : outputs.map((o) => (o === '' ? '' : this.claim(o)));
    this.nodes.push({
      name: nodeName,
      op_type: opType,
      domain: opts.domain ?? '',
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }
}

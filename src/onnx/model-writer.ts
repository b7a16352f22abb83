import { closeSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { ELEM_TYPE_CODE, type GraphBuilder, type WeightData } from './graph-builder.js';
import { encodeModel, type TensorMessage } from './onnx-proto.js';

export const OPSET = 21;
export const MS_OPSET = 1;
const IR_VERSION = 10;
/** Tensors at least this large go to the external-data file, page-aligned so ONNX Runtime can map them. */
const EXTERNAL_THRESHOLD_BYTES = 1024;
const ALIGNMENT = 4096;

export interface WrittenModel {
  modelPath: string;
  dataPath: string;
  weightBytes: number;
}

function bytesOf(data: WeightData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Writes `<path>` (the graph) and `<path>.data` (the weights), producing and writing one weight at a
 * time. Both files are written under temporary names and renamed, so an interrupted build never
 * leaves a graph that looks complete.
 */
export function writeModel(
  graph: GraphBuilder,
  path: string,
  metadata: Record<string, string> = {},
  onWeight?: (done: number, total: number) => void,
): WrittenModel {
  const dataPath = `${path}.data`;
  const dataName = basename(dataPath);
  // Per-process temporary names: two processes converting the same checkpoint into one folder (two
  // `sieve eval` runs started together) each rename their own complete files; the results are identical.
  const tmp = `.${process.pid}.tmp`;
  const fd = openSync(`${dataPath}${tmp}`, 'w');
  const initializer: TensorMessage[] = [];
  let offset = 0;
  try {
    graph.weights.forEach((w, i) => {
      const data = w.produce();
      const expected = w.dims.reduce((a, b) => a * b, 1);
      if (data.length !== expected) {
        throw new Error(`weight ${w.name}: ${data.length} values for dims [${w.dims.join(', ')}]`);
      }
      const bytes = bytesOf(data);
      const tensor: TensorMessage = { name: w.name, dims: [...w.dims], data_type: ELEM_TYPE_CODE[w.dtype] };
      if (bytes.byteLength < EXTERNAL_THRESHOLD_BYTES) {
        tensor.raw_data = bytes.slice();
      } else {
        offset = Math.ceil(offset / ALIGNMENT) * ALIGNMENT;
        writeSync(fd, bytes, 0, bytes.byteLength, offset);
        tensor.data_location = 1;
        tensor.external_data = [
          { key: 'location', value: dataName },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(bytes.byteLength) },
        ];
        offset += bytes.byteLength;
      }
      initializer.push(tensor);
      onWeight?.(i + 1, graph.weights.length);
    });
  } finally {
    closeSync(fd);
  }
  const usesMs = graph.nodes.some((n) => n.domain === 'com.microsoft');
  const proto = encodeModel({
    ir_version: IR_VERSION,
    producer_name: 'vlm-sieve',
    producer_version: '0.1.0',
    opset_import: [{ domain: '', version: OPSET }, ...(usesMs ? [{ domain: 'com.microsoft', version: MS_OPSET }] : [])],
    metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes,
      initializer,
      input: graph.inputs,
      output: graph.outputs,
    },
  });
  writeFileSync(`${path}${tmp}`, proto);
  renameSync(`${dataPath}${tmp}`, dataPath);
  renameSync(`${path}${tmp}`, path);
  return { modelPath: path, dataPath, weightBytes: offset };
}

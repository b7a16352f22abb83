import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ModelError, UsageError } from '../errors.js';
import type { ModelConfig } from '../model/vlm-config.js';
import type { GraphBuilder } from './graph-builder.js';
import { idefics3Keys } from './idefics3-keys.js';
import { buildIdefics3Graphs } from './idefics3-vision.js';
import {
  DEFAULT_QUANT_BLOCK,
  defaultVisionDtype,
  type GraphDtype,
  type VisionDtype,
  visionGraphDtype,
  type WeightDtype,
  type WeightReader,
} from './layers.js';
import { llavaKeys } from './llava-keys.js';
import { buildDecoderSegment, type TextKeys } from './llm-decoder.js';
import { writeModel } from './model-writer.js';
import { onevisionKeys } from './onevision-keys.js';
import { buildOnevisionGraphs, ONEVISION_GRAPHS } from './onevision-vision.js';
import { qwen2VlKeys } from './qwen2vl-keys.js';
import { buildQwen2VlGraphs } from './qwen2vl-vision.js';
import { buildEmbedding, buildProjector, buildVisionEncoder } from './vision-encoder.js';

/** Bumped whenever the graphs' inputs, outputs or numerics change, so old caches are rebuilt. */
export const GRAPH_FORMAT = 3;
const MAX_ROTARY_POSITIONS = 32768;

export interface SegmentEntry {
  start: number;
  end: number;
  file: string;
  /** Non-final segments output the last prompt token's attention row at layer end−1 (FastV). */
  lastTokenAttention: boolean;
}

/** The vision-side and embedding graph files of a manifest. */
export interface GraphFiles {
  vision: string;
  /** Absent when the vision graph outputs LLM-width rows already (the projector is then the identity). */
  projector?: string;
  embed: string;
  /** Graphs a VisionInput may name as its post-vision step (vision-input.ts PostVision). */
  post?: string[];
  /** A graph without inputs whose one output is the row every PromptLayout separator row takes. */
  separator?: string;
}

export interface GraphManifest {
  format: number;
  dtype: WeightDtype;
  /** The vision-side graphs' (vision tower, connector/projector). */
  visionDtype: VisionDtype;
  /** Weights per MatMulNBits block (int8/int4; absent in manifests written before it was configurable: 32). */
  quantBlock?: number;
  boundaries: number[];
  maxPositions: number;
  config: ModelConfig;
  graphs: GraphFiles;
  /** Heads of the vision tower's feature-layer keys (VisionZip averages over them). */
  visionHeads: number;
  segments: SegmentEntry[];
  /** sha256 of each source file: a later run reuses the graphs only when these match. */
  sources: Record<string, string>;
  /** Bytes of weights per graph file, for the memory planner. */
  weightBytes: Record<string, number>;
}

export interface ConvertibleCheckpoint {
  dir: string;
  config: ModelConfig;
  weights: WeightReader;
  hashSourceFiles(): Promise<Record<string, string>>;
}

export interface ConvertOptions {
  outDir?: string;
  dtype?: WeightDtype;
  /** Default: defaultVisionDtype(dtype). */
  visionDtype?: VisionDtype;
  /** Weights per MatMulNBits block with int8/int4 (default 32). */
  quantBlock?: number;
  boundaries?: number[];
  force?: boolean;
  onProgress?: (event: { graph: string; done: number; total: number; graphIndex: number; graphCount: number }) => void;
}

const isQuantized = (dtype: WeightDtype) => dtype === 'int8' || dtype === 'int4';

/** MatMulNBits takes block sizes that are powers of two from 16 (ONNX Runtime's kernels). */
function checkQuantBlock(block: number): number {
  if (![16, 32, 64, 128, 256].includes(block)) {
    throw new UsageError(`quantisation block size ${block} is not supported`, 'use 16, 32, 64, 128 or 256');
  }
  return block;
}

/** Pruning layers every method may need: ViTCoP's S = 2 and D = round(0.69·L) (design §3). */
export function defaultBoundaries(numLayers: number): number[] {
  return normaliseBoundaries([2, Math.round(0.69 * numLayers)], numLayers);
}

export function normaliseBoundaries(boundaries: number[], numLayers: number): number[] {
  for (const b of boundaries) {
    if (!Number.isInteger(b) || b <= 0 || b >= numLayers) {
      throw new ModelError(
        `segment boundary ${b} is not a layer inside the decoder`,
        `boundaries must be integers in 1..${numLayers - 1}`,
      );
    }
  }
  return [...new Set(boundaries)].sort((a, b) => a - b);
}

export function segmentRanges(boundaries: number[], numLayers: number): [number, number][] {
  const edges = [0, ...boundaries, numLayers];
  return edges.slice(0, -1).map((start, i) => [start, edges[i + 1]]);
}

/** Where graphs for this checkpoint, dtype and boundaries live unless --out says otherwise. */
export function defaultGraphDir(
  checkpointDir: string,
  dtype: WeightDtype,
  boundaries: number[],
  visionDtype = defaultVisionDtype(dtype),
  quantBlock = DEFAULT_QUANT_BLOCK,
): string {
  const vision = visionDtype === defaultVisionDtype(dtype) ? '' : `-v${visionDtype}`;
  const block = quantBlock === DEFAULT_QUANT_BLOCK || !isQuantized(dtype) ? '' : `-q${quantBlock}`;
  const variant = `${dtype}${vision}${block}-b${boundaries.join('_') || 'none'}`;
  const beside = join(checkpointDir, '.sieve', variant);
  try {
    accessSync(checkpointDir, constants.W_OK);
    return beside;
  } catch {
    const key = createHash('sha256').update(resolve(checkpointDir)).digest('hex').slice(0, 16);
    return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vlm-sieve', key, variant);
  }
}

export function readManifest(dir: string): GraphManifest | null {
  const path = join(dir, 'manifest.json');
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as GraphManifest;
  } catch {
    return null;
  }
}

function sameSources(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

const PROJECTED: GraphFiles = { vision: 'vision.onnx', projector: 'projector.onnx', embed: 'embed.onnx' };

/** The vision-side graphs of the checkpoint's family, their roles, and where its text model's weights are. */
function familyGraphs(
  config: ModelConfig,
  weights: WeightReader,
  dtype: GraphDtype,
): { textKeys: TextKeys; graphs: [string, () => GraphBuilder][]; files: GraphFiles } {
  switch (config.modelType) {
    case 'qwen2_vl':
      return { textKeys: qwen2VlKeys(weights), graphs: buildQwen2VlGraphs(config, weights, dtype), files: PROJECTED };
    case 'idefics3':
    case 'smolvlm':
      return { textKeys: idefics3Keys(weights), graphs: buildIdefics3Graphs(config, weights, dtype), files: PROJECTED };
    case 'llava_onevision':
      return {
        textKeys: onevisionKeys(weights).textKeys,
        graphs: buildOnevisionGraphs(config, weights, dtype),
        files: {
          vision: ONEVISION_GRAPHS.vision,
          embed: 'embed.onnx',
          post: [ONEVISION_GRAPHS.videoPool, ONEVISION_GRAPHS.anyresPack],
          separator: ONEVISION_GRAPHS.imageNewline,
        },
      };
    case 'llava':
      return {
        textKeys: llavaKeys(weights),
        graphs: [
          ['vision.onnx', () => buildVisionEncoder(config.vision, weights, dtype)],
          ['projector.onnx', () => buildProjector(config.projector, weights, dtype)],
        ],
        files: PROJECTED,
      };
  }
}

/**
 * Builds the vision, projector, embedding and decoder-segment graphs of a checkpoint, or reuses the
 * cached ones when the manifest's source hashes, dtype, boundaries and format match.
 */
export async function convertCheckpoint(
  ckpt: ConvertibleCheckpoint,
  opts: ConvertOptions = {},
): Promise<{ dir: string; manifest: GraphManifest; reused: boolean }> {
  const dtype = opts.dtype ?? 'fp32';
  const visionDtype = opts.visionDtype ?? defaultVisionDtype(dtype);
  const quantBlock = checkQuantBlock(opts.quantBlock ?? DEFAULT_QUANT_BLOCK);
  const L = ckpt.config.text.numLayers;
  const boundaries = opts.boundaries ? normaliseBoundaries(opts.boundaries, L) : defaultBoundaries(L);
  const dir = opts.outDir ?? defaultGraphDir(ckpt.dir, dtype, boundaries, visionDtype, quantBlock);
  const sources = await ckpt.hashSourceFiles();

  const cached = readManifest(dir);
  if (
    !opts.force &&
    cached &&
    cached.format === GRAPH_FORMAT &&
    cached.dtype === dtype &&
    cached.visionDtype === visionDtype &&
    (cached.quantBlock ?? DEFAULT_QUANT_BLOCK) === quantBlock &&
    cached.boundaries.join() === boundaries.join() &&
    sameSources(cached.sources, sources)
  ) {
    return { dir, manifest: cached, reused: true };
  }

  mkdirSync(dir, { recursive: true });
  const maxPositions = Math.min(ckpt.config.text.maxPositionEmbeddings, MAX_ROTARY_POSITIONS);
  const segments: SegmentEntry[] = segmentRanges(boundaries, L).map(([start, end]) => ({
    start,
    end,
    file: `decoder-${start}-${end}.onnx`,
    lastTokenAttention: end < L,
  }));
  // Block quantisation is for the decoder's and LM head's MatMuls (read at every generated token); the
  // embedding table is gathered from fp16.
  const embedDtype = isQuantized(dtype) ? 'fp16' : dtype;
  const { textKeys, graphs, files } = familyGraphs(ckpt.config, ckpt.weights, visionGraphDtype(visionDtype));
  const builds: [string, () => GraphBuilder][] = [
    ...graphs,
    ['embed.onnx', () => buildEmbedding(ckpt.weights, ckpt.config.text.hiddenSize, embedDtype, textKeys.text)],
    ...segments.map((s): [string, () => GraphBuilder] => [
      s.file,
      () => buildDecoderSegment(ckpt.config.text, ckpt.weights, { ...s }, dtype, maxPositions, textKeys, quantBlock),
    ]),
  ];
  const weightBytes: Record<string, number> = {};
  builds.forEach(([file, build], graphIndex) => {
    const written = writeModel(
      build(),
      join(dir, file),
      { 'vlm-sieve.graph-format': String(GRAPH_FORMAT) },
      (done, total) => opts.onProgress?.({ graph: file, done, total, graphIndex, graphCount: builds.length }),
    );
    weightBytes[file] = written.weightBytes;
  });

  const manifest: GraphManifest = {
    format: GRAPH_FORMAT,
    dtype,
    visionDtype,
    quantBlock,
    boundaries,
    maxPositions,
    config: ckpt.config,
    graphs: files,
    visionHeads: ckpt.config.vision.numHeads,
    segments,
    sources,
    weightBytes,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return { dir, manifest, reused: false };
}

import { type Checkpoint, loadCheckpoint } from '../model/checkpoint.js';
import {
  type ConvertOptions,
  convertCheckpoint,
  defaultBoundaries,
  defaultGraphDir,
  type GraphManifest,
  normaliseBoundaries,
} from '../onnx/convert.js';
import { defaultVisionDtype, type VisionDtype, type WeightDtype } from '../onnx/layers.js';

export interface PrepareOptions {
  dtype?: WeightDtype;
  /** Vision-side graphs; default: defaultVisionDtype(dtype) for the CPU. */
  visionDtype?: VisionDtype;
  /** Weights per MatMulNBits block with int8/int4 (default 32). */
  quantBlock?: number;
  boundaries?: number[];
  /** Layers the configured pruning methods act at in this model; added to the boundaries. */
  pruningLayers?: (model: Pick<Checkpoint, 'config' | 'family'>) => number[];
  /** Where graphs go; default: beside the checkpoint (or the user cache when it is read-only). */
  graphDir?: string;
  force?: boolean;
  onProgress?: ConvertOptions['onProgress'];
}

export interface PreparedModel {
  checkpoint: Checkpoint;
  graphDir: string;
  manifest: GraphManifest;
  /** False when cached graphs were reused. */
  converted: boolean;
}

/**
 * Loads a checkpoint (or takes one already loaded) and makes sure its graphs exist and match it
 * (converting on first use).
 */
export async function prepareModel(model: string | Checkpoint, opts: PrepareOptions = {}): Promise<PreparedModel> {
  const checkpoint = typeof model === 'string' ? loadCheckpoint(model) : model;
  const dtype = opts.dtype ?? 'fp32';
  const visionDtype = opts.visionDtype ?? defaultVisionDtype(dtype);
  const L = checkpoint.config.text.numLayers;
  const boundaries = normaliseBoundaries(
    [...(opts.boundaries ?? defaultBoundaries(L)), ...(opts.pruningLayers?.(checkpoint) ?? [])],
    L,
  );
  const graphDir = opts.graphDir ?? defaultGraphDir(checkpoint.dir, dtype, boundaries, visionDtype, opts.quantBlock);
  const { dir, manifest, reused } = await convertCheckpoint(
    {
      dir: checkpoint.dir,
      config: checkpoint.config,
      weights: checkpoint.weights,
      hashSourceFiles: () => checkpoint.hashSourceFiles(),
    },
    {
      outDir: graphDir,
      dtype,
      visionDtype,
      quantBlock: opts.quantBlock,
      boundaries,
      force: opts.force,
      onProgress: opts.onProgress,
    },
  );
  return { checkpoint, graphDir: dir, manifest, converted: !reused };
}

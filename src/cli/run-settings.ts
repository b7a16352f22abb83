import { resolve } from 'node:path';
import type { Command } from 'commander';
import { deviceNames } from '../config/devices.js';
import { loadConfig } from '../config/load-config.js';
import type { SieveConfig } from '../config/schema.js';
import type { RuntimeOptions } from '../engine/ort-session.js';
import type { SamplingOptions } from '../engine/sampling.js';
import type { PruneRequest } from '../engine/visual-query.js';
import { UsageError } from '../errors.js';
import { configureFfmpeg } from '../media/ffmpeg-binaries.js';
import type { Sampling } from '../media/sampler.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { VISION_DTYPES, type VisionDtype, WEIGHT_DTYPES, type WeightDtype } from '../onnx/layers.js';
import { createMethod, defaultBudget, METHOD_NAMES } from '../prune/registry.js';
import { parseChoice, parseInteger, parseNumber } from './cli-output.js';
import { defaultModelDir } from './default-model.js';

/** Flags shared by the commands that run the model; every one overrides the config file. */
export interface RunFlags {
  config?: string;
  device?: string;
  model?: string;
  frames?: string;
  fps?: string;
  maxNewTokens?: string;
  temperature?: string;
  topP?: string;
  seed?: string;
  method?: string;
  budget?: string;
  dtype?: string;
  visionDtype?: string;
  quantBlock?: string;
  ep?: string;
  threads?: string;
  verbose?: boolean;
}

export interface RunSettings {
  modelDir: string;
  sampling: Sampling;
  maxNewTokens: number;
  sampler: SamplingOptions;
  prune: PruneRequest;
  dtype: WeightDtype;
  /** Undefined: the default for dtype and the execution provider (defaultVisionDtype). */
  visionDtype?: VisionDtype;
  /** Weights per MatMulNBits block with int8/int4. */
  quantBlock: number;
  runtime: RuntimeOptions;
}

export function addRunOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML config (default: $SIEVE_CONFIG, else ./sieve.yaml when present)')
    .option(
      '--device <name>',
      `device profile under the config: ${deviceNames().join(', ')} (memory budget, EP, dtype, threads, frames)`,
    )
    .option('--model <dir>', 'Hugging Face llava checkpoint folder (default: the shipped demo model)')
    .option('--frames <n>', 'frames sampled uniformly over the video (default 8)')
    .option('--fps <rate>', 'sample frames at this rate instead')
    .option('--max-new-tokens <n>', 'longest answer in tokens (default 32)')
    .option('--temperature <t>', '0 = greedy (default); above 0 samples')
    .option('--top-p <p>', 'nucleus sampling mass (default 1)')
    .option('--seed <s>', 'sampling and random-pruning seed (default 0)')
    .option('--method <name>', `visual-token pruning method: ${METHOD_NAMES.join(', ')} (default none)`)
    .option('--budget <fraction>', "layer-averaged fraction of visual tokens kept, in (0, 1] (default: the method's)")
    .option('--dtype <dtype>', 'graph weights: fp32 (default), fp16, or int8/int4 decoder MatMuls')
    .option(
      '--vision-dtype <dtype>',
      'vision graphs: fp32, fp16 or int8 (default: as --dtype; int8 on the CPU with int8/int4 weights)',
    )
    .option('--quant-block <n>', 'weights per quantisation block with int8/int4: 16, 32 (default), 64, 128, 256')
    .option('--ep <provider>', 'execution provider: cpu (default), cuda, tensorrt')
    .option('--threads <n>', 'inference threads (default 0 = one per core)')
    .option('--verbose', "show ONNX Runtime's own log lines (warnings and errors)");
}

/** The config file's values with the command line's on top. */
export function resolveRunSettings(flags: RunFlags): RunSettings & { config: SieveConfig } {
  const { config } = loadConfig(flags.config, process.env, flags.device);
  configureFfmpeg({ ffmpegPath: config.ffmpeg.ffmpeg_path, ffprobePath: config.ffmpeg.ffprobe_path });
  const frames = flags.frames ?? (flags.fps === undefined ? config.sampling.frames?.toString() : undefined);
  const fps = flags.fps ?? (flags.frames === undefined ? config.sampling.fps?.toString() : undefined);
  if (flags.frames !== undefined && flags.fps !== undefined) throw new UsageError('give --frames or --fps, not both');
  const sampling: Sampling =
    fps !== undefined
      ? { fps: parseNumber(fps, '--fps', 0, 1000, { exclusiveMin: true }) }
      : { frames: parseInteger(frames ?? '8', '--frames', 1, 1024) };
  const g = config.generation;
  const seed = flags.seed === undefined ? g.seed : parseInteger(flags.seed, '--seed', 0, 0xffffffff);
  return {
    config,
    modelDir: resolve(flags.model ?? config.model ?? defaultModelDir()),
    sampling,
    maxNewTokens:
      flags.maxNewTokens === undefined
        ? g.max_new_tokens
        : parseInteger(flags.maxNewTokens, '--max-new-tokens', 1, 4096),
    sampler: {
      temperature:
        flags.temperature === undefined ? g.temperature : parseNumber(flags.temperature, '--temperature', 0, 10),
      topP: flags.topP === undefined ? g.top_p : parseNumber(flags.topP, '--top-p', 0, 1, { exclusiveMin: true }),
      seed,
    },
    prune: pruneRequest(flags, config, seed),
    dtype: flags.dtype === undefined ? config.runtime.dtype : parseChoice(flags.dtype, '--dtype', WEIGHT_DTYPES),
    visionDtype:
      flags.visionDtype === undefined
        ? config.runtime.vision_dtype
        : parseChoice(flags.visionDtype, '--vision-dtype', VISION_DTYPES),
    quantBlock:
      flags.quantBlock === undefined
        ? config.runtime.quant_block
        : parseInteger(flags.quantBlock, '--quant-block', 16, 256),
    runtime: {
      ep:
        flags.ep === undefined
          ? config.runtime.ep
          : parseChoice(flags.ep, '--ep', ['cpu', 'cuda', 'tensorrt'] as const),
      threads: flags.threads === undefined ? config.runtime.threads : parseInteger(flags.threads, '--threads', 0, 1024),
      verbose: flags.verbose === true,
    },
  };
}

/**
 * The method and budget in force. A budget needs a method (it would otherwise be silently ignored);
 * a method without a budget runs at its default one (DEFAULT_BUDGETS).
 */
function pruneRequest(flags: RunFlags, config: SieveConfig, seed: number): PruneRequest {
  const method = flags.method ?? config.pruning.method;
  const budget =
    flags.budget === undefined
      ? config.pruning.budget
      : parseNumber(flags.budget, '--budget', 0, 1, { exclusiveMin: true });
  if (method === 'none' && budget !== undefined && budget < 1) {
    const given = flags.budget === undefined ? 'pruning.budget in the config' : '--budget';
    throw new UsageError(
      `${given} was given without a pruning method, so nothing would be pruned`,
      `add --method (e.g. --method vitcop; one of ${METHOD_NAMES.filter((m) => m !== 'none').join(', ')})`,
    );
  }
  return { method, budget: budget ?? defaultBudget(method), options: config.pruning.options[method] ?? {}, seed };
}

/** What choosing pruning layers needs of a checkpoint. */
export type PrunedModel = Pick<Checkpoint, 'config' | 'family'>;

/**
 * The decoder layers the given pruning runs act at, so the graphs get segment boundaries there. Building
 * each method once also checks its name, budget and options before any work starts.
 */
export function pruningLayers(runs: readonly PruneRequest[], frames: number): (model: PrunedModel) => number[] {
  return ({ config, family }) =>
    runs.flatMap((run) => {
      if (run.method === 'none') return [];
      const numLayers = config.text.numLayers;
      const plan = family.plan(frames);
      const tokensPerFrame = plan.gridRows * plan.gridCols;
      const method = createMethod(
        run.method,
        { budget: run.budget, frames: plan.units, tokensPerFrame, numLayers, seed: run.seed },
        run.options,
      );
      return method.layer ? method.layers(numLayers) : [];
    });
}

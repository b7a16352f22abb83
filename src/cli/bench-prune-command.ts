import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import { type Answer, VlmPipeline } from '../engine/answer-pipeline.js';
import type { PruneRequest } from '../engine/visual-query.js';
import { UsageError } from '../errors.js';
import { videoFrames } from '../media/sampler.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { QWEN2_0_5B_TEXT, writeRandomCheckpoint } from '../model/random-checkpoint.js';
import { writeRandomIdefics3Checkpoint } from '../model/random-idefics3-checkpoint.js';
import { writeRandomOnevisionCheckpoint } from '../model/random-onevision-checkpoint.js';
import { writeRandomQwen2VlCheckpoint } from '../model/random-qwen2vl-checkpoint.js';
import { METHOD_NAMES } from '../prune/registry.js';
import { addBenchOutOption, writeBenchResult } from './bench-results.js';
import { displayPath, formatBytes, parseInteger, parseNumber } from './cli-output.js';
import { PACKAGE_ROOT } from './default-model.js';
import { evaluationRuns, feasibleRuns } from './eval-command.js';
import { addRunOptions, pruningLayers, type RunFlags, resolveRunSettings } from './run-settings.js';

interface BenchPruneFlags extends RunFlags {
  video?: string;
  methods?: string;
  repeat: string;
  decodeTokens: string;
  /** true (the flag alone) is the llava shape. */
  randomLarge?: boolean | string;
  keep?: boolean;
  out: string;
}

interface MethodTiming {
  method: string;
  budget: number;
  visionMs: number;
  prefillMs: number;
  hostMs: number;
  firstTokenMs: number;
  /** Per generated token after the first (0 when only one token was generated). */
  decodeMsPerToken: number;
  layerAveragedTokens: number;
  inputTokens: number;
}

export const DEMO_CLIP = join(PACKAGE_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');

/**
 * A random llava of realistic size for timing only: a 256-patch CLIP tower (224 px, patch 14) in front
 * of Qwen2-0.5B's decoder shape. Its answers mean nothing; its prefill costs what a real one does.
 */
function writeLargeRandomCheckpoint(dir: string): void {
  writeRandomCheckpoint(dir, {
    vision: {
      family: 'clip',
      hiddenSize: 256,
      intermediateSize: 1024,
      numLayers: 4,
      numHeads: 4,
      imageSize: 224,
      patchSize: 14,
    },
    text: QWEN2_0_5B_TEXT,
    seed: 11,
  });
}

/**
 * The issue-12 size: a llava with a SigLIP-base 384/14 tower (729 tokens a frame, 5,832 at 8 frames) in
 * front of Qwen2-0.5B's decoder shape — where host pruning and the projector must stay small.
 */
function writeSiglip384RandomCheckpoint(dir: string): void {
  writeRandomCheckpoint(dir, {
    vision: {
      family: 'siglip',
      hiddenSize: 768,
      intermediateSize: 3072,
      numLayers: 12,
      numHeads: 12,
      imageSize: 384,
      patchSize: 14,
    },
    text: { ...QWEN2_0_5B_TEXT, maxPositions: 32768 },
    seed: 11,
  });
}

/** SmolVLM2-256M's shape: SigLIP 512 px / patch 16 with pixel shuffle ×4 (64 tokens a frame) + SmolLM2-135M. */
function writeSmolVlm2RandomCheckpoint(dir: string): void {
  writeRandomIdefics3Checkpoint(dir, {
    vision: { hiddenSize: 768, intermediateSize: 3072, numLayers: 12, numHeads: 12, imageSize: 512, patchSize: 16 },
    scaleFactor: 4,
    text: {
      hiddenSize: 576,
      intermediateSize: 1536,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      vocabSize: 49280,
      maxPositions: 8192,
    },
    seed: 11,
  });
}

/**
 * A random Qwen2-VL for timing: Qwen2-VL-2B's decoder shape (M-RoPE, tied embeddings) behind a reduced ViT
 * with the real patch geometry (patch 14, 2×2 merge, frame pairs); min = max pixels 448² make every frame
 * a 16×16 token grid, as many tokens per unit as the llava shape has per frame.
 */
function writeLargeRandomQwen2VlCheckpoint(dir: string): void {
  writeRandomQwen2VlCheckpoint(dir, {
    vision: { depth: 4, embedDim: 256, numHeads: 4, mlpRatio: 4, patchSize: 14 },
    text: {
      hiddenSize: 1536,
      intermediateSize: 8960,
      numLayers: 28,
      numHeads: 12,
      numKvHeads: 2,
      vocabSize: 4096,
      mropeSection: [16, 24, 24],
      tieWordEmbeddings: true,
    },
    minPixels: 448 * 448,
    maxPixels: 448 * 448,
    seed: 11,
  });
}

/**
 * LLaVA-OneVision-0.5B's token geometry: SigLIP 384/14 tiles (27×27 patches, pooled to 14×14 = 196 tokens a
 * frame) with a 4-layer, 256-wide tower, in front of Qwen2-0.5B's decoder shape.
 */
function writeOnevisionRandomCheckpoint(dir: string): void {
  writeRandomOnevisionCheckpoint(dir, {
    vision: { hiddenSize: 256, intermediateSize: 1024, numLayers: 4, numHeads: 4, imageSize: 384, patchSize: 14 },
    text: QWEN2_0_5B_TEXT,
    maxTilesPerSide: 6,
    seed: 11,
  });
}

/** The shapes `--random-large` can take, by name. */
const RANDOM_SHAPES: Record<string, { description: string; write: (dir: string) => void }> = {
  llava: {
    description: 'random CLIP 224/14 (hidden 256, 4 layers) + Qwen2-0.5B decoder shape',
    write: writeLargeRandomCheckpoint,
  },
  'llava-siglip384': {
    description: 'random SigLIP-base 384/14 (729 tokens a frame) + Qwen2-0.5B decoder shape',
    write: writeSiglip384RandomCheckpoint,
  },
  'smolvlm2-256m': {
    description: 'random SmolVLM2-256M shape (SigLIP 512/16, pixel shuffle ×4, SmolLM2-135M decoder)',
    write: writeSmolVlm2RandomCheckpoint,
  },
  'qwen2-vl-2b': {
    description: 'random Qwen2-VL ViT (patch 14, merge 2; embed 256, 4 blocks) + Qwen2-VL-2B decoder shape',
    write: writeLargeRandomQwen2VlCheckpoint,
  },
  'llava-onevision-0.5b': {
    description:
      'random LLaVA-OneVision-0.5B token geometry (SigLIP 384/14 hidden 256 × 4 layers, 196 tokens a frame, ' +
      'Qwen2-0.5B decoder)',
    write: writeOnevisionRandomCheckpoint,
  },
};

export function randomShape(flag: true | string) {
  const name = flag === true ? 'llava' : flag;
  const shape = Object.hasOwn(RANDOM_SHAPES, name) ? RANDOM_SHAPES[name] : undefined;
  if (!shape) {
    throw new UsageError(
      `unknown --random-large shape "${name}"`,
      `valid shapes: ${Object.keys(RANDOM_SHAPES).join(', ')}`,
    );
  }
  return shape;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timingOf(run: PruneRequest, answers: Answer[]): MethodTiming {
  const m = (f: (a: Answer) => number) => median(answers.map(f));
  return {
    method: run.method,
    budget: run.budget,
    visionMs: m((a) => a.timings.visionMs),
    prefillMs: m((a) => a.timings.projectMs + a.timings.prefillMs),
    hostMs: m((a) => a.timings.pruneMs),
    firstTokenMs: m((a) => a.timings.firstTokenMs),
    decodeMsPerToken: m((a) => (a.generatedTokens > 1 ? a.timings.generateMs / (a.generatedTokens - 1) : 0)),
    layerAveragedTokens: answers[0].visualTokens.layerAveraged,
    inputTokens: answers[0].visualTokens.input,
  };
}

/**
 * Host pruning time next to the prefill it saves, per method, on one clip: every method answers the
 * same question `repeat` times (after one warm-up) and the medians are reported side by side with the
 * unpruned run.
 */
async function benchPrune(flags: BenchPruneFlags): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const shape = flags.randomLarge ? randomShape(flags.randomLarge) : undefined;
  if (shape && flags.model) throw new UsageError('give --model or --random-large, not both');
  const work = shape ? mkdtempSync(join(tmpdir(), 'sieve-bench-prune-')) : undefined;
  try {
    if (shape && work) {
      log(`writing a ${shape.description} checkpoint to ${work}`);
      shape.write(join(work, 'checkpoint'));
    }
    const settings = resolveRunSettings({ ...flags, model: work ? join(work, 'checkpoint') : flags.model });
    const repeat = parseInteger(flags.repeat, '--repeat', 1, 1000);
    const decodeTokens = parseInteger(flags.decodeTokens, '--decode-tokens', 1, 4096);
    const methods =
      flags.methods === undefined || flags.methods === 'all'
        ? METHOD_NAMES.filter((m) => m !== 'none')
        : flags.methods.split(',').map((m) => m.trim());
    const budget =
      flags.budget === undefined ? 0.111 : parseNumber(flags.budget, '--budget', 0, 1, { exclusiveMin: true });
    const frames = 'frames' in settings.sampling ? settings.sampling.frames : undefined;
    if (frames === undefined)
      throw new UsageError('sieve bench prune samples a fixed number of frames', 'use --frames N instead of --fps');
    const requested = [
      { ...settings.prune, method: 'none', budget: 1 },
      ...evaluationRuns(methods, [budget], settings.prune, settings.config.pruning.options),
    ];
    const checkpoint = loadCheckpoint(settings.modelDir);
    const { runs, unreachable } = feasibleRuns(requested, frames, checkpoint);
    for (const u of unreachable) log(`skipping ${u.run.method} @ ${u.run.budget}: ${u.reason}`);

    const video = flags.video ?? DEMO_CLIP;
    const clip = await lastValueFrom(videoFrames(video, { frames }).pipe(toArray()));
    log(`building or loading the graphs of ${settings.modelDir}`);
    const pipeline = await VlmPipeline.open(checkpoint, {
      dtype: settings.dtype,
      visionDtype: settings.visionDtype,
      quantBlock: settings.quantBlock,
      runtime: settings.runtime,
      pruningLayers: pruningLayers(runs, frames),
    });
    const question = 'what colour is the circle ?';
    const timings: MethodTiming[] = [];
    try {
      for (const run of runs) {
        log(`${run.method} @ ${run.budget}: ${repeat} + 1 runs`);
        const answers: Answer[] = [];
        for (let i = 0; i <= repeat; i++) {
          const a = await pipeline.answer(clip, question, { maxNewTokens: decodeTokens, prune: run, ignoreEos: true });
          if (i > 0) answers.push(a);
        }
        timings.push(timingOf(run, answers));
      }
    } finally {
      await pipeline.close();
    }
    const unpruned = timings[0];
    const peakRss = process.resourceUsage().maxRSS * 1024;
    const result = {
      model: shape ? shape.description : displayPath(settings.modelDir),
      video: displayPath(video),
      frames,
      repeat,
      decodeTokens,
      threads: settings.runtime.threads || 'auto',
      methods: timings.map((t) => ({
        ...t,
        prefillVsUnpruned: t.prefillMs / unpruned.prefillMs,
        hostOfPrefill: t.hostMs / t.prefillMs,
      })),
      unreachable: unreachable.map((u) => ({ method: u.run.method, budget: u.run.budget, reason: u.reason })),
      peakRssBytes: peakRss,
    };
    const file = writeBenchResult(flags.out, 'prune', result);

    console.log(`${result.model}, ${frames} frames, medians of ${repeat} runs`);
    console.log(
      'method      budget  vision ms  prefill ms  vs unpruned  host pruning ms  host / prefill  TTFT ms  ' +
        'decode ms/token  layer-avg tokens',
    );
    for (const t of result.methods) {
      console.log(
        [
          t.method.padEnd(10),
          String(t.budget).padStart(7),
          t.visionMs.toFixed(1).padStart(10),
          t.prefillMs.toFixed(1).padStart(11),
          `${t.prefillVsUnpruned.toFixed(2)}×`.padStart(12),
          t.hostMs.toFixed(2).padStart(16),
          `${(100 * t.hostOfPrefill).toFixed(1)}%`.padStart(15),
          t.firstTokenMs.toFixed(0).padStart(8),
          (decodeTokens > 1 ? t.decodeMsPerToken.toFixed(1) : '—').padStart(16),
          t.layerAveragedTokens.toFixed(1).padStart(17),
        ].join(' '),
      );
    }
    console.log(`peak RSS ${formatBytes(peakRss)}; results in ${file}`);
  } finally {
    if (work && !flags.keep) rmSync(work, { recursive: true, force: true });
  }
}

export function registerBenchPruneCommand(bench: Command): void {
  addBenchOutOption(
    addRunOptions(
      bench
        .command('prune')
        .description(
          'host pruning time next to the prefill time it saves, per method, on one clip ' +
            '(demo model, or --random-large)',
        ),
    ),
  )
    .option('--video <file>', 'clip to answer about (default: a shipped demo example)')
    .option('--methods <list>', 'comma-separated methods, or "all" (default: all)')
    .option('--repeat <n>', 'timed runs per method, after one warm-up', '5')
    .option('--decode-tokens <n>', 'answer tokens generated per run, past end-of-sequence (decode ms/token)', '1')
    .option(
      '--random-large [shape]',
      'time a random model of realistic size instead of --model: llava (CLIP 224/14 + Qwen2-0.5B decoder, ' +
        'the default), llava-siglip384 (SigLIP-base 384/14 + Qwen2-0.5B), smolvlm2-256m, qwen2-vl-2b (Qwen2-VL-2B decoder, reduced ViT) or llava-onevision-0.5b',
    )
    .option('--keep', 'keep the random checkpoint and its graphs')
    .action(async (flags: BenchPruneFlags) => benchPrune(flags));
}

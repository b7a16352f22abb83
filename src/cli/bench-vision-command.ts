import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import { type EncodedFrame, VlmPipeline } from '../engine/answer-pipeline.js';
import { UsageError } from '../errors.js';
import { videoFrames } from '../media/sampler.js';
import { VISION_DTYPES, type VisionDtype } from '../onnx/layers.js';
import { DEMO_CLIP, randomShape } from './bench-prune-command.js';
import { addBenchOutOption, writeBenchResult } from './bench-results.js';
import { displayPath, parseChoice, parseInteger } from './cli-output.js';
import { defaultModelDir } from './default-model.js';

interface BenchVisionFlags {
  model?: string;
  randomLarge?: boolean | string;
  visionDtypes: string;
  frames: string;
  repeat: string;
  video?: string;
  threads: string;
  out: string;
}

/** Relative L2 error of `a` against the reference `ref`. */
function relativeError(a: Float32Array, ref: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

const joined = (frames: EncodedFrame[], pick: (f: EncodedFrame) => Float32Array) => {
  const out = new Float32Array(frames.reduce((a, f) => a + pick(f).length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(pick(f), at);
    at += pick(f).length;
  }
  return out;
};

/**
 * The vision side alone (tower, and what the family runs after it) per vision dtype, side by side in
 * one process: ms per frame, and the features' and saliency's error against the first dtype.
 */
async function benchVision(flags: BenchVisionFlags): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const dtypes = flags.visionDtypes.split(',').map((d) => parseChoice(d.trim(), '--vision-dtypes', VISION_DTYPES));
  const frames = parseInteger(flags.frames, '--frames', 1, 256);
  const repeat = parseInteger(flags.repeat, '--repeat', 1, 100);
  const threads = parseInteger(flags.threads, '--threads', 0, 1024);
  const shape = flags.randomLarge ? randomShape(flags.randomLarge) : undefined;
  if (shape && flags.model) throw new UsageError('give --model or --random-large, not both');
  const work = mkdtempSync(join(tmpdir(), 'sieve-bench-vision-'));
  try {
    if (shape) {
      log(`writing a ${shape.description} checkpoint to ${work}`);
      shape.write(join(work, 'checkpoint'));
    }
    const modelDir = shape ? join(work, 'checkpoint') : (flags.model ?? defaultModelDir());
    const video = flags.video ?? DEMO_CLIP;
    const clip = await lastValueFrom(videoFrames(video, { frames }).pipe(toArray()));
    const results: { visionDtype: VisionDtype; msPerFrame: number; featureError: number; saliencyError: number }[] = [];
    let reference: EncodedFrame[] | undefined;
    for (const visionDtype of dtypes) {
      log(`${visionDtype}: building the graphs, then ${repeat} + 1 encodes of ${frames} frames`);
      const pipeline = await VlmPipeline.open(modelDir, {
        visionDtype,
        runtime: { ep: 'cpu', threads },
        graphDir: join(work, `graphs-${visionDtype}`),
      });
      try {
        let encoded = await pipeline.encode(clip);
        const times: number[] = [];
        for (let r = 0; r < repeat; r++) {
          const t0 = performance.now();
          encoded = await pipeline.encode(clip);
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        reference ??= encoded;
        const ref = reference;
        results.push({
          visionDtype,
          msPerFrame: times[Math.floor(times.length / 2)] / frames,
          featureError: relativeError(
            joined(encoded, (f) => f.features),
            joined(ref, (f) => f.features),
          ),
          saliencyError: relativeError(
            joined(encoded, (f) => f.saliency),
            joined(ref, (f) => f.saliency),
          ),
        });
      } finally {
        await pipeline.close();
      }
    }
    const result = {
      model: shape ? shape.description : displayPath(modelDir),
      video: displayPath(video),
      frames,
      repeat,
      threads: threads || 'auto',
      reference: dtypes[0],
      dtypes: results.map((r) => ({ ...r, speedup: results[0].msPerFrame / r.msPerFrame })),
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
    const file = writeBenchResult(flags.out, 'vision', result);
    console.log(`${result.model}, ${frames} frames, medians of ${repeat} runs; errors against ${dtypes[0]}`);
    console.log('vision dtype  ms/frame  speed-up  features rel. L2  saliency rel. L2');
    for (const r of result.dtypes) {
      console.log(
        [
          r.visionDtype.padEnd(12),
          r.msPerFrame.toFixed(1).padStart(9),
          `${r.speedup.toFixed(2)}×`.padStart(9),
          r.featureError.toExponential(2).padStart(17),
          r.saliencyError.toExponential(2).padStart(17),
        ].join(' '),
      );
    }
    console.log(`results in ${file}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export function registerBenchVisionCommand(bench: Command): void {
  addBenchOutOption(
    bench
      .command('vision')
      .description('the vision side per vision dtype, side by side: ms per frame and the error against the first'),
  )
    .option('--model <dir>', 'checkpoint folder (default: the shipped demo model)')
    .option('--random-large [shape]', 'a random model of realistic size instead (shapes of sieve bench prune)')
    .option(
      '--vision-dtypes <list>',
      `comma-separated, the first is the reference: ${VISION_DTYPES.join(', ')}`,
      'fp32,int8',
    )
    .option('--frames <n>', 'frames per encode', '8')
    .option('--repeat <n>', 'timed encodes per dtype, after one warm-up', '3')
    .option('--video <file>', 'clip to sample the frames from (default: a shipped demo example)')
    .option('--threads <n>', 'inference threads (default 0 = one per core)', '0')
    .action(async (flags: BenchVisionFlags) => benchVision(flags));
}

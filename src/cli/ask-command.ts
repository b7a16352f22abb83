import { extname } from 'node:path';
import type { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import { VlmPipeline } from '../engine/answer-pipeline.js';
import { MediaError, UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';
import { imageFrames } from '../media/image-source.js';
import { type Sampling, videoFrames } from '../media/sampler.js';
import { writeKeptOverlays } from '../vision/kept-overlay.js';
import { displayPath, formatBytes } from './cli-output.js';
import { addRunOptions, pruningLayers, type RunFlags, resolveRunSettings } from './run-settings.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif', '.tif', '.tiff', '.avif']);

interface AskFlags extends RunFlags {
  json?: boolean;
  showKept?: string;
}

/** Splits `<video|image…> "<question>"`: the last argument is the question. */
export function splitInputs(args: string[]): { inputs: string[]; question: string } {
  if (args.length < 2) {
    throw new UsageError(
      args.length === 0 ? 'missing the video and the question' : 'missing the question',
      'usage: sieve ask <video|image…> "<question>"',
    );
  }
  return { inputs: args.slice(0, -1), question: args[args.length - 1] };
}

async function readFrames(inputs: string[], sampling: Sampling): Promise<Frame[]> {
  const images = inputs.filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase()));
  if (images.length === inputs.length) return lastValueFrom(imageFrames(inputs).pipe(toArray()));
  if (inputs.length > 1) {
    throw new UsageError(
      `give one video, or one or more images; got ${inputs.length} inputs of which ${inputs.length - images.length} are not images`,
    );
  }
  const frames = await lastValueFrom(videoFrames(inputs[0], sampling).pipe(toArray()));
  if (frames.length === 0)
    throw new MediaError(
      `no frames could be decoded from ${inputs[0]}`,
      'check that the video plays, or sample with --frames instead of --fps',
    );
  return frames;
}

export function registerAskCommand(program: Command): void {
  addRunOptions(
    program
      .command('ask')
      .description('answer a question about a video (or images) with a vision-language model')
      .argument('<inputs...>', 'a video file or image files, then the question in quotes'),
  )
    .option('--json', 'print one JSON object with the answer and its provenance')
    .option('--show-kept <dir>', 'write PNGs of the frames with the patches the model kept highlighted')
    .action(async (args: string[], flags: AskFlags) => {
      const { inputs, question } = splitInputs(args);
      const settings = resolveRunSettings(flags);
      const started = performance.now();
      const frames = await readFrames(inputs, settings.sampling);
      const decodeMs = performance.now() - started;
      const pipeline = await VlmPipeline.open(settings.modelDir, {
        dtype: settings.dtype,
        runtime: settings.runtime,
        pruningLayers: pruningLayers([settings.prune], frames.length),
        onProgress: (e) =>
          e.done === e.total &&
          process.stderr.write(`converting the checkpoint: ${e.graph} built (${e.graphIndex + 1}/${e.graphCount})\n`),
      });
      try {
        const answer = await pipeline.answer(
          frames,
          question,
          { maxNewTokens: settings.maxNewTokens, sampling: settings.sampler, prune: settings.prune },
          flags.json ? undefined : (delta) => process.stdout.write(delta),
        );
        const totalMs = performance.now() - started;
        const peakRssBytes = process.resourceUsage().maxRSS * 1024;
        const t = answer.timings;
        const v = answer.visualTokens;
        const kept = flags.showKept
          ? await writeKeptOverlays(frames, v.keptPerFrame, flags.showKept, {
              imageSize: pipeline.checkpoint.config.vision.imageSize,
              gridSize: pipeline.checkpoint.config.vision.gridSize,
              tokensPerFrame: v.perFrame,
            })
          : [];
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({
              question,
              answer: answer.answer,
              finish_reason: answer.finishReason,
              inputs,
              model: displayPath(settings.modelDir),
              method: settings.prune.method,
              budget: settings.prune.budget,
              frames: answer.frames.map((f) => ({ index: f.index, t: Math.round(f.timestampS * 1000) / 1000 })),
              tokens: {
                prompt: answer.promptTokens,
                generated: answer.generatedTokens,
                visual_per_frame: v.perFrame,
                visual_input: v.input,
                visual_layer_averaged: Math.round(v.layerAveraged * 100) / 100,
                input_budget: v.input / (v.perFrame * frames.length),
                layer_averaged_budget: v.layerAveraged / (v.perFrame * frames.length),
                stages: v.stages,
              },
              kept_per_frame: v.keptPerFrame,
              timings_ms: round({
                decode: decodeMs,
                preprocess: t.preprocessMs,
                vision: t.visionMs,
                project: t.projectMs,
                prefill: t.prefillMs,
                generate: t.generateMs,
                first_token: t.firstTokenMs,
                prune_host: t.pruneMs,
                total: totalMs,
              }),
              memory: {
                peak_rss_bytes: peakRssBytes,
                kv_reserved_bytes: answer.memory.kvReservedBytes,
                kv_used_bytes: answer.memory.kvUsedBytes,
              },
              ...(kept.length ? { kept_images: kept } : {}),
            })}\n`,
          );
        } else {
          process.stdout.write('\n');
          const ms = (x: number) => `${x.toFixed(0)} ms`;
          process.stderr.write(
            `decode ${ms(decodeMs)} · vision ${ms(t.visionMs + t.preprocessMs)} · prefill ${ms(t.projectMs + t.prefillMs)} · generate ${ms(t.generateMs)} ` +
              `(${answer.generatedTokens} tokens) · first token ${ms(t.firstTokenMs)} · ${answer.frames.length} frames, ${v.input} visual tokens in ` +
              `(${v.layerAveraged.toFixed(1)} layer-averaged, method ${settings.prune.method}) · peak RSS ${formatBytes(peakRssBytes)}\n`,
          );
          if (kept.length) process.stderr.write(`kept patches: ${kept.length} images in ${flags.showKept}\n`);
        }
      } finally {
        await pipeline.close();
      }
    });
}

function round(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, x]) => [k, Math.round(x * 10) / 10]));
}

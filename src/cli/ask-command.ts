import { extname, resolve } from 'node:path';
import type { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import { VlmPipeline } from '../engine/answer-pipeline.js';
import type { ExecutionProvider } from '../engine/ort-session.js';
import { MediaError, UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';
import { imageFrames } from '../media/image-source.js';
import { videoFrames, type Sampling } from '../media/sampler.js';
import { defaultModelDir } from './default-model.js';
import { formatBytes, parseChoice, parseInteger, parseNumber } from './cli-output.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif', '.tif', '.tiff', '.avif']);

interface AskFlags {
  model?: string;
  frames?: string;
  fps?: string;
  maxNewTokens: string;
  seed: string;
  temperature: string;
  topP: string;
  json?: boolean;
  dtype: string;
  ep: string;
  threads: string;
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
    throw new UsageError(`give one video, or one or more images; got ${inputs.length} inputs of which ${inputs.length - images.length} are not images`);
  }
  const frames = await lastValueFrom(videoFrames(inputs[0], sampling).pipe(toArray()));
  if (frames.length === 0) throw new MediaError(`no frames could be decoded from ${inputs[0]}`, 'check that the video plays, or sample with --frames instead of --fps');
  return frames;
}

export function registerAskCommand(program: Command): void {
  program
    .command('ask')
    .description('answer a question about a video (or images) with a vision-language model')
    .argument('<inputs...>', 'a video file or image files, then the question in quotes')
    .option('--model <dir>', 'Hugging Face llava checkpoint folder (default: the shipped demo model)')
    .option('--frames <n>', 'frames sampled uniformly over the video (default 8)')
    .option('--fps <rate>', 'sample frames at this rate instead')
    .option('--max-new-tokens <n>', 'longest answer in tokens', '32')
    .option('--temperature <t>', '0 = greedy; above 0 samples', '0')
    .option('--top-p <p>', 'nucleus sampling mass', '1')
    .option('--seed <s>', 'sampling seed', '0')
    .option('--json', 'print one JSON object with the answer and its provenance')
    .option('--dtype <dtype>', 'graph weights: fp32 or fp16', 'fp32')
    .option('--ep <provider>', 'execution provider: cpu, cuda, tensorrt', 'cpu')
    .option('--threads <n>', 'inference threads (0 = one per core)', '0')
    .action(async (args: string[], flags: AskFlags) => {
      const { inputs, question } = splitInputs(args);
      if (flags.frames !== undefined && flags.fps !== undefined) throw new UsageError('give --frames or --fps, not both');
      const sampling: Sampling =
        flags.fps !== undefined ? { fps: parseNumber(flags.fps, '--fps', 0, 1000, { exclusiveMin: true }) } : { frames: parseInteger(flags.frames ?? '8', '--frames', 1, 1024) };
      const maxNewTokens = parseInteger(flags.maxNewTokens, '--max-new-tokens', 1, 4096);
      const sampler = {
        temperature: parseNumber(flags.temperature, '--temperature', 0, 10),
        topP: parseNumber(flags.topP, '--top-p', 0, 1, { exclusiveMin: true }),
        seed: parseInteger(flags.seed, '--seed', 0, 0xffffffff),
      };
      const dtype = parseChoice(flags.dtype, '--dtype', ['fp32', 'fp16'] as const);
      const ep = parseChoice(flags.ep, '--ep', ['cpu', 'cuda', 'tensorrt'] as const satisfies readonly ExecutionProvider[]);
      const threads = parseInteger(flags.threads, '--threads', 0, 1024);
      const modelDir = resolve(flags.model ?? defaultModelDir());

      const started = performance.now();
      const frames = await readFrames(inputs, sampling);
      const decodeMs = performance.now() - started;
      const pipeline = await VlmPipeline.open(modelDir, {
        dtype,
        runtime: { ep, threads },
        onProgress: (e) => e.done === e.total && process.stderr.write(`converting the checkpoint: ${e.graph} built (${e.graphIndex + 1}/${e.graphCount})\n`),
      });
      try {
        const answer = await pipeline.answer(frames, question, { maxNewTokens, sampling: sampler }, flags.json ? undefined : (delta) => process.stdout.write(delta));
        const totalMs = performance.now() - started;
        const peakRssBytes = process.resourceUsage().maxRSS * 1024;
        const t = answer.timings;
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({
              question,
              answer: answer.answer,
              finish_reason: answer.finishReason,
              inputs,
              model: modelDir,
              frames: answer.frames.map((f) => ({ index: f.index, t: Math.round(f.timestampS * 1000) / 1000 })),
              tokens: { prompt: answer.promptTokens, generated: answer.generatedTokens, visual_per_frame: answer.visualTokens.perFrame, visual_input: answer.visualTokens.input, visual_layer_averaged: answer.visualTokens.layerAveraged },
              timings_ms: round({ decode: decodeMs, preprocess: t.preprocessMs, vision: t.visionMs, project: t.projectMs, prefill: t.prefillMs, generate: t.generateMs, first_token: t.firstTokenMs, total: totalMs }),
              memory: { peak_rss_bytes: peakRssBytes, kv_reserved_bytes: answer.memory.kvReservedBytes, kv_used_bytes: answer.memory.kvUsedBytes },
            })}\n`,
          );
        } else {
          process.stdout.write('\n');
          const ms = (v: number) => `${v.toFixed(0)} ms`;
          process.stderr.write(
            `decode ${ms(decodeMs)} · vision ${ms(t.visionMs + t.preprocessMs)} · prefill ${ms(t.projectMs + t.prefillMs)} · generate ${ms(t.generateMs)} ` +
              `(${answer.generatedTokens} tokens) · first token ${ms(t.firstTokenMs)} · ${answer.frames.length} frames, ${answer.visualTokens.input} visual tokens · peak RSS ${formatBytes(peakRssBytes)}\n`,
          );
        }
      } finally {
        await pipeline.close();
      }
    });
}

function round(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

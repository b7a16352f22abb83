import type { Command } from 'commander';
import { VlmPipeline } from '../engine/answer-pipeline.js';
import { prepareModel } from '../engine/prepare-model.js';
import { runtimeBaseline } from '../engine/runtime-baseline.js';
import { UsageError } from '../errors.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { writeKeptOverlays } from '../vision/kept-overlay.js';
import { fewerFramesNotice, planAskFrames, plural } from './ask-frames.js';
import { checkAskInputs, splitInputs } from './ask-inputs.js';
import { type MemoryContext, memoryNotice, planAskMemory, predictQueryPeak } from './ask-memory.js';
import { askServer, type ServerAnswer, serverBaseUrl } from './ask-server.js';
import { displayPath, formatBytes, parseNumber } from './cli-output.js';
import { addRunOptions, pruningLayers, type RunFlags, resolveRunSettings } from './run-settings.js';

interface AskFlags extends RunFlags {
  memoryBudget?: string;
  json?: boolean;
  showKept?: string;
  strict?: boolean;
  server?: string;
  token?: string;
}

/** Flags that set how the model runs here: with --server, the server's pipeline decides. */
const LOCAL_ONLY_FLAGS = [
  ['showKept', '--show-kept'],
  ['dtype', '--dtype'],
  ['ep', '--ep'],
  ['threads', '--threads'],
  ['verbose', '--verbose'],
] as const;

function checkServerFlags(flags: AskFlags): void {
  if (flags.token !== undefined && flags.server === undefined) {
    throw new UsageError('--token is for --server', 'give the server too: --server http://127.0.0.1:8080');
  }
  if (flags.server === undefined) return;
  serverBaseUrl(flags.server);
  const given = LOCAL_ONLY_FLAGS.find(([key]) => flags[key] !== undefined);
  if (given) {
    throw new UsageError(
      `${given[1]} is about running the model here, and --server asks a running sieve serve`,
      'leave it out (the pipeline sieve serve runs decides its runtime), or leave out --server',
    );
  }
}

export function registerAskCommand(program: Command): void {
  addRunOptions(
    program
      .command('ask')
      .description('answer a question about a video (or images) with a vision-language model')
      .argument('<inputs...>', 'a video file or image files, then the question in quotes'),
  )
    .option(
      '--memory-budget <MB>',
      'peak memory the answer may use, MB: fewer frames, a lower pruning budget, then a shorter answer ' +
        'are chosen to fit it (default: memory.budget_mb, else none)',
    )
    .option('--json', 'print one JSON object with the answer and its provenance')
    .option('--show-kept <dir>', 'write PNGs of the frames with the patches the model kept highlighted')
    .option('--strict', "refuse when the model's context holds fewer frames than asked for (default: use fewer)")
    .option(
      '--server <url>',
      'ask a running `sieve serve --http` (its model is loaded and warm), e.g. http://127.0.0.1:8080',
    )
    .option('--token <token>', "the server's http.token (default: $SIEVE_TOKEN)")
    .action(async (args: string[], flags: AskFlags) => {
      // Everything that can be checked without the video is checked first: a usage error comes at once.
      const { inputs, question } = splitInputs(args);
      checkAskInputs(inputs, question);
      checkServerFlags(flags);
      const settings = resolveRunSettings(flags);
      const checkpoint = loadCheckpoint(settings.modelDir);
      const { overlay } = checkpoint.family;
      if (flags.showKept && !overlay) {
        checkpoint.weights.close();
        throw new UsageError(
          `--show-kept draws square encoder inputs; ${checkpoint.config.modelType} checkpoints are not supported yet`,
          'leave out --show-kept; --json lists the kept token indices per frame',
        );
      }
      let plan = await planAskFrames(inputs, settings.sampling, checkpoint, question, settings.maxNewTokens);
      const budgetMb =
        flags.memoryBudget === undefined
          ? settings.config.memory.budget_mb
          : parseNumber(flags.memoryBudget, '--memory-budget', 0, 1e9, { exclusiveMin: true });
      const layers = pruningLayers([settings.prune], plan.used.length);
      layers(checkpoint); // the method, its budget and options, for this many frames
      if (plan.limit) {
        const notice = fewerFramesNotice(plan, settings.maxNewTokens);
        if (flags.strict) {
          throw new UsageError(
            `${plural(plan.requested.length, 'frame')} requested but only ${plan.limit.frames} fit the model's ` +
              `context of ${plan.limit.context} positions (--strict)`,
            `ask for at most ${plan.limit.frames} frames (--frames ${plan.limit.frames}, or a lower --fps), ` +
              'or drop --strict to use that many spread evenly',
          );
        }
        process.stderr.write(`note: ${notice}\n`);
      }
      if (flags.server !== undefined) {
        const started = performance.now();
        const frames = await plan.read();
        const decodeMs = performance.now() - started;
        checkpoint.weights.close();
        const reply = await askServer(
          {
            url: flags.server,
            token: flags.token ?? process.env.SIEVE_TOKEN,
            modelDir: settings.modelDir,
            frames,
            question,
            maxNewTokens: settings.maxNewTokens,
            sampler: settings.sampler,
            prune: settings.prune,
          },
          flags.json ? undefined : (delta) => process.stdout.write(delta),
        );
        reportServerAnswer(reply, { server: flags.server, json: flags.json === true, question, inputs, decodeMs });
        return;
      }
      const prepared = await prepareModel(checkpoint, {
        dtype: settings.dtype,
        visionDtype: settings.visionDtype,
        quantBlock: settings.quantBlock,
        pruningLayers: layers,
        onProgress: (e) =>
          e.done === e.total &&
          process.stderr.write(`converting the checkpoint: ${e.graph} built (${e.graphIndex + 1}/${e.graphCount})\n`),
      });
      const memory: MemoryContext = {
        model: checkpoint,
        manifest: prepared.manifest,
        baselineBytes: runtimeBaseline(prepared.graphDir, settings.runtime.ep),
        question,
        prune: settings.prune,
        timestampsFor: (k) => plan.thinned(k).used,
      };
      const requested = {
        frames: plan.used.length,
        budget: settings.prune.budget,
        maxNewTokens: settings.maxNewTokens,
      };
      let chosen = requested;
      if (budgetMb !== undefined) {
        const fit = planAskMemory(memory, requested, budgetMb);
        if (fit.degraded.length) process.stderr.write(`note: ${memoryNotice(fit, requested, budgetMb)}\n`);
        chosen = fit.settings;
        plan = plan.thinned(chosen.frames);
      }
      const prune = { ...settings.prune, budget: chosen.budget };
      const maxNewTokens = chosen.maxNewTokens;
      const predictedPeakBytes = predictQueryPeak(memory, chosen);
      const started = performance.now();
      const frames = await plan.read();
      const decodeMs = performance.now() - started;
      const pipeline = await VlmPipeline.start(prepared, {
        // One question per process: loading without pre-packed weights saves more than its one prefill loses.
        runtime: { ...settings.runtime, prepackWeights: false },
        warmKernels: settings.prune.method !== 'none',
      });
      try {
        const answer = await pipeline.answer(
          frames,
          question,
          { maxNewTokens, sampling: settings.sampler, prune },
          flags.json ? undefined : (delta) => process.stdout.write(delta),
        );
        const totalMs = performance.now() - started;
        const peakRssBytes = process.resourceUsage().maxRSS * 1024;
        const t = answer.timings;
        const v = answer.visualTokens;
        const kept =
          flags.showKept && overlay
            ? await writeKeptOverlays(frames, v.keptPerFrame, flags.showKept, {
                ...overlay,
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
              method: prune.method,
              budget: prune.budget,
              frames_requested: plan.requested.map((t) => Math.round(t * 1000) / 1000),
              frames: answer.frames.map((f) => ({ index: f.index, t: Math.round(f.timestampS * 1000) / 1000 })),
              tokens: {
                prompt: answer.promptTokens,
                generated: answer.generatedTokens,
                visual_per_frame: v.perFrame,
                visual_input: v.input,
                visual_layer_averaged: Math.round(v.layerAveraged * 100) / 100,
                input_budget: v.input / (v.perFrame * v.keptPerFrame.length),
                layer_averaged_budget: v.layerAveraged / (v.perFrame * v.keptPerFrame.length),
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
                predicted_peak_bytes: predictedPeakBytes,
                peak_rss_bytes: peakRssBytes,
                ...(budgetMb === undefined ? {} : { budget_bytes: budgetMb * 1024 * 1024 }),
                kv_reserved_bytes: answer.memory.kvReservedBytes,
                kv_used_bytes: answer.memory.kvUsedBytes,
              },
              ...(kept.length ? { kept_images: kept } : {}),
            })}\n`,
          );
        } else {
          process.stdout.write('\n');
          const ms = (x: number) => `${x.toFixed(0)} ms`;
          const parts = [
            `decode ${ms(decodeMs)}`,
            `vision ${ms(t.visionMs + t.preprocessMs)}`,
            `prefill ${ms(t.projectMs + t.prefillMs)}`,
            `generate ${ms(t.generateMs)} (${plural(answer.generatedTokens, 'token')})`,
            `first token ${ms(t.firstTokenMs)}`,
            `${plural(answer.frames.length, 'frame')}, ${v.input} visual tokens in ` +
              `(${v.layerAveraged.toFixed(1)} layer-averaged, method ${settings.prune.method})`,
            `peak RSS ${formatBytes(peakRssBytes)} (predicted ${formatBytes(predictedPeakBytes ?? 0)})`,
          ];
          process.stderr.write(`${parts.join(' · ')}\n`);
          if (kept.length) process.stderr.write(`kept patches: ${kept.length} images in ${flags.showKept}\n`);
        }
      } finally {
        await pipeline.close();
      }
    });
}

/** What `ask --server` prints: the answer (streamed already unless --json), then where the time went. */
function reportServerAnswer(
  reply: ServerAnswer,
  ctx: { server: string; json: boolean; question: string; inputs: string[]; decodeMs: number },
): void {
  const latency = (reply.sieve.latency_ms ?? {}) as Record<string, number>;
  if (ctx.json) {
    process.stdout.write(
      `${JSON.stringify({
        question: ctx.question,
        answer: reply.answer,
        finish_reason: reply.finishReason,
        inputs: ctx.inputs,
        server: serverBaseUrl(ctx.server),
        ...reply.sieve,
        timings_ms: round({
          decode: ctx.decodeMs,
          first_token_client: reply.firstTextMs,
          total_client: reply.totalMs,
        }),
        request_bytes: reply.requestBytes,
      })}\n`,
    );
    return;
  }
  process.stdout.write('\n');
  const ms = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : `${x.toFixed(0)} ms`);
  const parts = [
    `server ${serverBaseUrl(ctx.server)}`,
    `decode ${ms(ctx.decodeMs)}`,
    `upload ${formatBytes(reply.requestBytes)}`,
    `queue ${ms(latency.queue)}`,
    `vision ${ms((latency.preprocess ?? 0) + (latency.vision ?? 0))}`,
    `prefill ${ms(latency.prefill)}`,
    `first token ${ms(reply.firstTextMs)} after sending`,
    `total ${ms(reply.totalMs)}`,
  ];
  process.stderr.write(`${parts.join(' · ')}\n`);
}

function round(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, x]) => [k, Math.round(x * 10) / 10]));
}

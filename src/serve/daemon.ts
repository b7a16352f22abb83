import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pruningLayers } from '../cli/run-settings.js';
import { type Answer, VlmPipeline } from '../engine/answer-pipeline.js';
import { fitFramesToContext } from '../engine/context-fit.js';
import type { RuntimeOptions } from '../engine/ort-session.js';
import type { PruneRequest } from '../engine/visual-query.js';
import { UsageError } from '../errors.js';
import type { ModelFamily } from '../family/model-family.js';
import { configureFfmpeg } from '../media/ffmpeg-binaries.js';
import type { DecodeFit } from '../media/frame-plan.js';
import { LiveSource } from '../media/live-source.js';
import { createMethod, defaultBudget } from '../prune/registry.js';
import { type CameraStatus, CameraStream } from './camera-stream.js';
import { FolderWatch } from './folder-watch.js';
import type { CameraConfig, PipelineConfig } from './pipeline-config.js';
import { QueryScheduler } from './query-scheduler.js';
import { evenlySpaced, type WindowFrame } from './rolling-window.js';

export interface WindowQuery {
  question: string;
  /** Only the last seconds of the window (default: all of it). */
  windowS?: number;
  maxFrames?: number;
  method?: string;
  budget?: number;
  /** Answer length and sampling for this query (default: the pipeline's generation keys). */
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Called with each new piece of the answer as it is generated (HTTP streaming). */
  onText?: (delta: string) => void;
}

/** An answer about a camera's window, with where it came from. */
export interface WindowAnswer {
  camera: string;
  question: string;
  answer: string;
  /** The frames the answer is about: stream time and wall-clock time they arrived. */
  frames: { t: number; at: string }[];
  /** Frames in the window that the context could not hold (the rest were spread evenly). */
  framesLeftOut: number;
  method: string;
  budget: number;
  tokens: {
    prompt: number;
    generated: number;
    visual_input: number;
    visual_layer_averaged: number;
    stages: Answer['visualTokens']['stages'];
  };
  /** queue: waiting for its turn; total: from the question's arrival to the answer. */
  latency_ms: { prefill: number; generate: number; first_token: number; queue: number; total: number };
  /** The process's peak RSS so far, and the language model's KV caches for this answer. */
  memory: { peak_rss_bytes: number; kv_reserved_bytes: number; kv_used_bytes: number };
  model: string;
}

export interface DaemonOptions {
  modelDir: string;
  modelName: string;
  runtime: RuntimeOptions;
  log: (line: string) => void;
}

/**
 * The camera daemon: one model, one stream per camera (source → vision encoder once per frame →
 * rolling window), standing questions asked on the windows, and a watched folder of clips.
 */
export class Daemon {
  readonly cameras = new Map<string, CameraStream>();
  private readonly timers: NodeJS.Timeout[] = [];
  readonly scheduler: QueryScheduler;
  private watch?: FolderWatch;
  private stopping = false;

  private constructor(
    readonly pipeline: PipelineConfig,
    readonly model: VlmPipeline,
    private readonly options: DaemonOptions,
  ) {
    this.scheduler = new QueryScheduler({
      capacity: pipeline.queries.capacity,
      deadlineMs: pipeline.queries.deadline_s * 1000,
    });
  }

  /**
   * Opens the model and starts every camera and the watch folder. A camera that never connects leaves
   * the others running.
   */
  static async start(pipeline: PipelineConfig, options: DaemonOptions): Promise<Daemon> {
    configureFfmpeg({ ffmpegPath: pipeline.ffmpeg.ffmpeg_path, ffprobePath: pipeline.ffmpeg.ffprobe_path });
    const runs = [...Object.values(pipeline.cameras).map((c) => pruneRequestOf(c.pruning, pipeline.generation.seed))];
    if (pipeline.watch) runs.push(pruneRequestOf(pipeline.watch.pruning, pipeline.generation.seed));
    const maxFrames = Math.max(
      1,
      ...Object.values(pipeline.cameras).map((c) => c.window.max_frames),
      pipeline.watch?.frames ?? 1,
    );
    const model = await VlmPipeline.open(options.modelDir, {
      dtype: pipeline.runtime.dtype,
      visionDtype: pipeline.runtime.vision_dtype,
      quantBlock: pipeline.runtime.quant_block,
      runtime: options.runtime,
      pruningLayers: pruningLayers(runs, maxFrames),
      warmKernels: true, // a daemon lives long; its first pruned question should not pay for the kernels
    });
    const daemon = new Daemon(pipeline, model, options);
    for (const [name, camera] of Object.entries(pipeline.cameras)) daemon.startCamera(name, camera);
    if (pipeline.watch) {
      daemon.watch = new FolderWatch(pipeline.watch, model, {
        generation: daemon.generation(),
        prune: pruneRequestOf(pipeline.watch.pruning, pipeline.generation.seed),
        modelName: options.modelName,
        log: (line) => daemon.log('watch', line),
      });
      daemon.watch.start();
    }
    return daemon;
  }

  /**
   * Answers a question about a camera's window (the frames encoded so far; no vision encoder runs),
   * through the scheduler: it waits its turn among the cameras and clients, and fails with BusyError
   * at once when the queue is full, or DeadlineError when it waited too long.
   */
  async ask(camera: string, query: WindowQuery, from: { client: string; deadlineMs?: number }): Promise<WindowAnswer> {
    if (!this.cameras.has(camera)) {
      throw new UsageError(`unknown camera "${camera}"`, `cameras: ${[...this.cameras.keys()].join(', ') || 'none'}`);
    }
    if (query.question.trim() === '') throw new UsageError('the question is empty');
    defaultBudget(query.method ?? this.pipeline.cameras[camera].pruning.method); // an unknown method, at once
    const submitted = performance.now();
    return this.scheduler.submit({
      client: from.client,
      camera,
      deadlineMs: from.deadlineMs,
      run: () => this.answerNow(camera, query, submitted),
    });
  }

  private async answerNow(camera: string, query: WindowQuery, submitted: number): Promise<WindowAnswer> {
    const started = performance.now();
    const stream = this.cameras.get(camera);
    if (!stream) throw new UsageError(`unknown camera "${camera}"`);
    const config = this.pipeline.cameras[camera];
    const window = stream.window.snapshot({ seconds: query.windowS, maxFrames: query.maxFrames });
    if (window.length === 0) {
      throw new UsageError(`camera ${camera} has no frames yet`, 'wait for its source to deliver frames');
    }
    const base = this.generation();
    const generation = {
      maxNewTokens: query.maxNewTokens ?? base.maxNewTokens,
      sampling: {
        temperature: query.temperature ?? base.sampling.temperature,
        topP: query.topP ?? base.sampling.topP,
        seed: query.seed ?? base.sampling.seed,
      },
    };
    const method = query.method ?? config.pruning.method;
    const prune: PruneRequest = {
      method,
      budget: query.budget ?? (query.method ? undefined : config.pruning.budget) ?? defaultBudget(method),
      options: config.pruning.options[method] ?? {},
      seed: generation.sampling.seed,
    };
    // The window's frames were encoded one unit each.
    const first = window.at(0);
    const fit = fitFramesToContext(
      this.model.checkpoint,
      query.question,
      window.length,
      generation.maxNewTokens,
      (k) => evenlySpaced(window, k).map((f) => f.timestampS),
      (k) =>
        first ? { units: k, gridRows: first.gridRows, gridCols: first.gridCols } : this.model.checkpoint.family.plan(k),
    );
    const frames = evenlySpaced(window, fit.frames);
    if (this.needsKeys(method) && frames.some((f) => !f.keys)) {
      throw new UsageError(
        `${method} reads the vision encoder's keys, which camera ${camera} does not keep ` +
          `(its method is ${config.pruning.method})`,
        'ask with a method that prunes after the encoder (e.g. divprune), ' +
          `or set the camera's pruning.method to ${method}`,
      );
    }
    const answer = await this.model.answerEncoded(
      frames,
      query.question,
      { maxNewTokens: generation.maxNewTokens, sampling: generation.sampling, prune },
      query.onText,
    );
    const now = performance.now();
    return describeAnswer(camera, query.question, answer, frames, window.length - frames.length, prune, {
      model: this.options.modelName,
      queueMs: started - submitted,
      totalMs: now - submitted,
    });
  }

  status(): CameraStatus[] {
    return [...this.cameras.values()].map((c) => c.status());
  }

  /**
   * Stops taking queries (the waiting ones are answered "shutting down"), lets the running one finish,
   * stops the sources, the timers and the watch, then closes the model.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.scheduler.close();
    for (const camera of this.cameras.values()) camera.stop();
    await this.watch?.stop();
    await this.model.close();
  }

  private startCamera(name: string, camera: CameraConfig): void {
    const { source, sampling } = camera;
    const live = new LiveSource({
      input:
        source.type === 'images'
          ? { type: 'images', path: source.path, intervalS: source.interval_s, loop: source.loop }
          : source,
      fps: sampling.fps,
      shortestEdge: decodeEdge(this.model.checkpoint.family.decodeFit),
      reconnect: {
        initialS: source.reconnect.initial_s,
        maxS: source.reconnect.max_s,
        jitter: source.reconnect.jitter,
      },
      stallS: source.stall_s,
      connectTimeoutS: source.connect_timeout_s,
      onEvent: (message) => this.log(name, message),
    });
    const keepKeys = this.needsKeys(camera.pruning.method);
    const stream = new CameraStream(name, live, async (frame) => (await this.model.encode([frame], { keepKeys }))[0], {
      window: {
        seconds: camera.window.seconds,
        maxFrames: camera.window.max_frames,
        maxTokens: camera.window.max_tokens,
        tokensPerFrame: tokensPerUnit(this.model.checkpoint.family),
      },
      ...(sampling.change
        ? {
            change: {
              tauStatic: sampling.change.tau_static,
              staticFraction: sampling.change.static_fraction,
              maxGapS: sampling.change.max_gap_s,
            },
          }
        : {}),
      onEvent: (event) => {
        if (event.type === 'encode-error') this.log(name, `frame at ${event.t} s not encoded: ${event.message}`);
        else if (event.type === 'ended') this.log(name, 'stream ended');
        else if (event.type === 'dropped') this.countDrop(name, stream);
      },
    });
    this.cameras.set(name, stream);
    stream.start();
    for (const standing of camera.questions) {
      let running = false;
      const timer = setInterval(() => {
        if (running || stream.window.size === 0) return;
        running = true;
        this.ask(name, { question: standing.question }, { client: 'standing' })
          .then((answer) => this.record(answer))
          .catch((err: unknown) =>
            this.log(name, `"${standing.question}" failed: ${err instanceof Error ? err.message : String(err)}`),
          )
          .finally(() => {
            running = false;
          });
      }, standing.every_s * 1000);
      this.timers.push(timer);
    }
  }

  /** Drops are logged at most once per 10 s per camera, with the running count. */
  private readonly lastDropLog = new Map<string, number>();
  private countDrop(name: string, stream: CameraStream): void {
    const now = performance.now();
    if (now - (this.lastDropLog.get(name) ?? -Infinity) < 10_000) return;
    this.lastDropLog.set(name, now);
    this.log(name, `encoder busy: ${stream.status().frames.dropped} frame(s) dropped so far`);
  }

  private record(answer: WindowAnswer): void {
    this.log(
      answer.camera,
      `${answer.question} → ${answer.answer} (${answer.frames.length} frames, ${answer.latency_ms.total} ms)`,
    );
    const file = this.pipeline.answers;
    if (file) {
      mkdirSync(dirname(file), { recursive: true });
      appendFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), ...answer })}\n`);
    }
  }

  /** Whether `method` has an encoder stage, which reads the feature-layer keys (ViTCoP's VIC, VisionZip). */
  private needsKeys(method: string): boolean {
    if (method === 'none') return false;
    const { config, family } = this.model.checkpoint;
    const request = {
      budget: defaultBudget(method),
      frames: 8,
      tokensPerFrame: tokensPerUnit(family),
      numLayers: config.text.numLayers,
      seed: 0,
    };
    try {
      return createMethod(method, request).encoder !== undefined;
    } catch {
      return true; // cannot tell at this size: keep the keys rather than fail a query later
    }
  }

  private generation() {
    const g = this.pipeline.generation;
    return { maxNewTokens: g.max_new_tokens, sampling: { temperature: g.temperature, topP: g.top_p, seed: g.seed } };
  }

  private log(who: string, message: string): void {
    this.options.log(`${new Date().toISOString()} ${who}: ${message}`);
  }
}

function pruneRequestOf(p: CameraConfig['pruning'], seed: number): PruneRequest {
  return { method: p.method, budget: p.budget ?? defaultBudget(p.method), options: p.options[p.method] ?? {}, seed };
}

/** An answer's token counts as every surface reports them: prompt, generated, visual tokens per stage. */
export function answerTokens(answer: Answer): WindowAnswer['tokens'] {
  const v = answer.visualTokens;
  return {
    prompt: answer.promptTokens,
    generated: answer.generatedTokens,
    visual_input: v.input,
    visual_layer_averaged: Math.round(v.layerAveraged * 10) / 10,
    stages: v.stages,
  };
}

function describeAnswer(
  camera: string,
  question: string,
  answer: Answer,
  frames: readonly WindowFrame[],
  framesLeftOut: number,
  prune: PruneRequest,
  { model, queueMs, totalMs }: { model: string; queueMs: number; totalMs: number },
): WindowAnswer {
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    camera,
    question,
    answer: answer.answer,
    frames: frames.map((f) => ({
      t: Math.round(f.timestampS * 1000) / 1000,
      at: new Date(f.receivedAt).toISOString(),
    })),
    framesLeftOut,
    method: prune.method,
    budget: prune.budget,
    tokens: answerTokens(answer),
    latency_ms: {
      prefill: round(answer.timings.projectMs + answer.timings.prefillMs),
      generate: round(answer.timings.generateMs),
      first_token: round(answer.timings.firstTokenMs),
      queue: round(queueMs),
      total: round(totalMs),
    },
    memory: {
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
      kv_reserved_bytes: answer.memory.kvReservedBytes,
      kv_used_bytes: answer.memory.kvUsedBytes,
    },
    model,
  };
}

/** LLM tokens of one frame (a live window holds each frame as its own unit). */
function tokensPerUnit(family: ModelFamily): number {
  const plan = family.plan(1);
  return plan.gridRows * plan.gridCols;
}

/** The shorter side live frames are scaled down to: enough for the processor's resize, never more. */
function decodeEdge(fit: DecodeFit | undefined): number | undefined {
  if (!fit) return undefined;
  // A pixel budget's side for a square frame: wider frames keep a little more than they need.
  if ('maxPixels' in fit) return Math.floor(Math.sqrt(fit.maxPixels));
  return 'shortestEdge' in fit ? fit.shortestEdge : Math.max(fit.width, fit.height);
}

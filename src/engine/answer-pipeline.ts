import { MediaError, UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { preprocessBatch } from '../vision/preprocess.js';
import { InferenceClient } from './inference-client.js';
import type { RuntimeOptions } from './ort-session.js';
import { type PreparedModel, type PrepareOptions, prepareModel } from './prepare-model.js';
import { buildPrompt, type PromptFrame, rejectImagePlaceholder } from './prompt.js';
import { GREEDY, type SamplingOptions } from './sampling.js';
import type { PruneRequest, StageTimings, VisualAnswer, VisualQuery } from './visual-query.js';

export interface AnswerOptions {
  maxNewTokens: number;
  sampling?: SamplingOptions;
  prune?: PruneRequest;
}

/** One frame after the vision encoder: what a camera window holds instead of pixels. */
export interface EncodedFrame {
  index: number;
  timestampS: number;
  /** [tokens, visionHidden] feature-layer hidden states. */
  features: Float32Array;
  /** [tokens] patch saliency. */
  saliency: Float32Array;
  /** [tokens, visionHidden] feature-layer keys, when a method that reads them may run. */
  keys?: Float32Array;
}

export interface Answer {
  answer: string;
  finishReason: VisualAnswer['finishReason'];
  frames: { index: number; timestampS: number }[];
  promptTokens: number;
  generatedTokens: number;
  visualTokens: VisualAnswer['visualTokens'];
  timings: StageTimings & { preprocessMs: number };
  memory: { kvReservedBytes: number; kvUsedBytes: number };
}

/**
 * One model, ready to answer: the checkpoint's tokenizer, template and processor on this thread,
 * its graphs in the inference worker.
 */
function checkQuestion(question: string, checkpoint: Checkpoint): void {
  if (question.trim() === '')
    throw new UsageError('the question is empty', 'ask something about the video, e.g. "what colour is the square?"');
  rejectImagePlaceholder(checkpoint.tokenizer, checkpoint.config.imageTokenId, question);
}

export class VlmPipeline {
  private constructor(
    readonly prepared: PreparedModel,
    private readonly client: InferenceClient,
  ) {}

  /** `model`: a checkpoint folder, or a checkpoint already loaded (the pipeline closes its weights). */
  static async open(
    model: string | Checkpoint,
    opts: PrepareOptions & { runtime: RuntimeOptions; warmKernels?: boolean },
  ): Promise<VlmPipeline> {
    const prepared = await prepareModel(model, opts);
    const client = await InferenceClient.start(prepared.graphDir, prepared.manifest, opts.runtime, {
      warmKernels: opts.warmKernels,
    });
    return new VlmPipeline(prepared, client);
  }

  get checkpoint(): Checkpoint {
    return this.prepared.checkpoint;
  }

  /** Answers about frames: preprocessing and the vision encoder run first. */
  async answer(
    frames: readonly Frame[],
    question: string,
    opts: AnswerOptions,
    onText?: (delta: string) => void,
  ): Promise<Answer> {
    if (frames.length === 0) throw new UsageError('no frames to answer about', 'give a video or at least one image');
    checkQuestion(question, this.checkpoint);
    const t0 = performance.now();
    const pixels = await this.preprocess(frames);
    const preprocessMs = performance.now() - t0;
    return this.run(frames, { pixels }, question, opts, preprocessMs, onText);
  }

  /**
   * Runs preprocessing and the vision encoder on frames as they arrive (a camera), for answers later:
   * keys are kept only when a pruning method that reads them (ViTCoP's VIC, VisionZip) may run.
   */
  async encode(frames: readonly Frame[], { keepKeys = true } = {}): Promise<EncodedFrame[]> {
    const vision = await this.client.encode(await this.preprocess(frames), frames.length);
    const n = vision.tokens;
    const width = vision.features.length / (vision.frames * n);
    return frames.map((f, i) => ({
      index: f.index,
      timestampS: f.timestampS,
      features: vision.features.slice(i * n * width, (i + 1) * n * width),
      saliency: vision.saliency.slice(i * n, (i + 1) * n),
      ...(keepKeys ? { keys: vision.keys.slice(i * n * width, (i + 1) * n * width) } : {}),
    }));
  }

  /** Answers about frames encoded earlier: the answer starts at the encoder-side pruning. */
  async answerEncoded(
    frames: readonly EncodedFrame[],
    question: string,
    opts: AnswerOptions,
    onText?: (delta: string) => void,
  ): Promise<Answer> {
    if (frames.length === 0)
      throw new UsageError('no frames to answer about yet', 'wait for the camera to deliver frames');
    checkQuestion(question, this.checkpoint);
    const n = this.checkpoint.config.tokensPerImage;
    const width = frames[0].features.length / n;
    const features = new Float32Array(frames.length * n * width);
    const saliency = new Float32Array(frames.length * n);
    const keys = new Float32Array(frames.length * n * width);
    for (const [i, f] of frames.entries()) {
      features.set(f.features, i * n * width);
      saliency.set(f.saliency, i * n);
      if (f.keys) keys.set(f.keys, i * n * width);
    }
    const grid = this.checkpoint.config.vision.gridSize;
    const encoded = { frames: frames.length, tokens: n, gridRows: grid, gridCols: grid, features, saliency, keys };
    return this.run(frames, { encoded }, question, opts, 0, onText);
  }

  private async preprocess(frames: readonly Frame[]): Promise<Float32Array> {
    const { config, processor } = this.checkpoint;
    const batch = await preprocessBatch(frames, processor);
    const size = config.vision.imageSize;
    if (batch.dims[2] !== size || batch.dims[3] !== size) {
      throw new MediaError(
        `frames preprocess to ${batch.dims[3]}×${batch.dims[2]} but the vision encoder takes ${size}×${size}`,
        "this checkpoint's preprocessor_config.json does not centre-crop: give square frames, " +
          'or add do_center_crop with crop_size to it',
      );
    }
    return batch.data;
  }

  private async run(
    frames: readonly (PromptFrame & { index: number })[],
    input: Pick<VisualQuery, 'pixels' | 'encoded'>,
    question: string,
    opts: AnswerOptions,
    preprocessMs: number,
    onText?: (delta: string) => void,
  ): Promise<Answer> {
    const { config, tokenizer, chatTemplate } = this.checkpoint;
    const prompt = buildPrompt(tokenizer, chatTemplate, config.imageTokenId, config.tokensPerImage, frames, question);
    const eosTokenIds = [
      ...new Set([...config.text.eosTokenIds, ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId])]),
    ];

    const generated: number[] = [];
    let emitted = '';
    const result = await this.client.query(
      {
        ...input,
        frames: frames.length,
        layout: prompt.layout,
        generation: { maxNewTokens: opts.maxNewTokens, sampling: opts.sampling ?? GREEDY, eosTokenIds },
        prune: opts.prune,
      },
      (token) => {
        generated.push(token);
        // Decoding the whole answer each time keeps multi-token characters and word spacing right.
        const text = tokenizer.decode(generated, { skipSpecialTokens: true });
        if (text.startsWith(emitted) && text.length > emitted.length) {
          onText?.(text.slice(emitted.length));
          emitted = text;
        }
      },
    );
    return {
      answer: tokenizer.decode(result.tokens, { skipSpecialTokens: true }).trim(),
      finishReason: result.finishReason,
      frames: frames.map((f) => ({ index: f.index, timestampS: f.timestampS })),
      promptTokens: prompt.layout.ids.length,
      generatedTokens: result.tokens.length,
      visualTokens: result.visualTokens,
      timings: { ...result.timings, preprocessMs },
      memory: { kvReservedBytes: result.kvBytes.reserved, kvUsedBytes: result.kvBytes.used },
    };
  }

  async close(): Promise<void> {
    await this.client.close();
    this.checkpoint.weights.close();
  }
}

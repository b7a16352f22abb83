import { MediaError, UsageError } from '../errors.js';
import type { Frame } from '../media/frame.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { preprocessBatch } from '../vision/preprocess.js';
import { InferenceClient } from './inference-client.js';
import type { RuntimeOptions } from './ort-session.js';
import { type PreparedModel, type PrepareOptions, prepareModel } from './prepare-model.js';
import { buildPrompt } from './prompt.js';
import { GREEDY, type SamplingOptions } from './sampling.js';
import type { PruneRequest, StageTimings, VisualAnswer } from './visual-query.js';

export interface AnswerOptions {
  maxNewTokens: number;
  sampling?: SamplingOptions;
  prune?: PruneRequest;
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
export class VlmPipeline {
  private constructor(
    readonly prepared: PreparedModel,
    private readonly client: InferenceClient,
  ) {}

  /** `model`: a checkpoint folder, or a checkpoint already loaded (the pipeline closes its weights). */
  static async open(
    model: string | Checkpoint,
    opts: PrepareOptions & { runtime: RuntimeOptions },
  ): Promise<VlmPipeline> {
    const prepared = await prepareModel(model, opts);
    const client = await InferenceClient.start(prepared.graphDir, prepared.manifest, opts.runtime);
    return new VlmPipeline(prepared, client);
  }

  get checkpoint(): Checkpoint {
    return this.prepared.checkpoint;
  }

  async answer(
    frames: readonly Frame[],
    question: string,
    opts: AnswerOptions,
    onText?: (delta: string) => void,
  ): Promise<Answer> {
    if (frames.length === 0) throw new UsageError('no frames to answer about', 'give a video or at least one image');
    if (question.trim() === '')
      throw new UsageError('the question is empty', 'ask something about the video, e.g. "what colour is the square?"');
    const { config, tokenizer, chatTemplate, processor } = this.checkpoint;
    const t0 = performance.now();
    const batch = await preprocessBatch(frames, processor);
    const size = config.vision.imageSize;
    if (batch.dims[2] !== size || batch.dims[3] !== size) {
      throw new MediaError(
        `frames preprocess to ${batch.dims[3]}×${batch.dims[2]} but the vision encoder takes ${size}×${size}`,
        "this checkpoint's preprocessor_config.json does not centre-crop: give square frames, " +
          'or add do_center_crop with crop_size to it',
      );
    }
    const pixels = batch.data;
    const preprocessMs = performance.now() - t0;
    const prompt = buildPrompt(tokenizer, chatTemplate, config.imageTokenId, config.tokensPerImage, frames, question);
    const eosTokenIds = [
      ...new Set([...config.text.eosTokenIds, ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId])]),
    ];

    const generated: number[] = [];
    let emitted = '';
    const result = await this.client.query(
      {
        pixels,
        frames: frames.length,
        promptIds: prompt.ids,
        imageSpans: prompt.imageSpans,
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
      promptTokens: prompt.ids.length,
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

import { UsageError } from '../errors.js';
import type { VisualPlan } from '../family/model-family.js';
import type { Frame } from '../media/frame.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { defaultVisionDtype } from '../onnx/layers.js';
import { InferenceClient } from './inference-client.js';
import type { RuntimeOptions } from './ort-session.js';
import { type PreparedModel, type PrepareOptions, prepareModel } from './prepare-model.js';
import { type PromptFrame, rejectPlaceholders } from './prompt.js';
import { GREEDY, type SamplingOptions } from './sampling.js';
import type { PruneRequest, StageTimings, VisualAnswer, VisualQuery } from './visual-query.js';

export interface AnswerOptions {
  maxNewTokens: number;
  sampling?: SamplingOptions;
  prune?: PruneRequest;
  /** Generate exactly maxNewTokens, past any end-of-sequence token (benchmarks time decode this way). */
  ignoreEos?: boolean;
}

/** One frame after the vision encoder: what a camera window holds instead of pixels. */
export interface EncodedFrame {
  index: number;
  timestampS: number;
  /** Its LLM-level token grid. */
  gridRows: number;
  gridCols: number;
  /** [tokens, featureWidth] the rows the projector takes. */
  features: Float32Array;
  /** [tokens] patch saliency. */
  saliency: Float32Array;
  /** [tokens, keyWidth] feature-layer keys, when a method that reads them may run. */
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
  rejectPlaceholders(checkpoint, question);
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
    const visionDtype = opts.visionDtype ?? defaultVisionDtype(opts.dtype ?? 'fp32', opts.runtime.ep);
    return VlmPipeline.start(await prepareModel(model, { ...opts, visionDtype }), opts);
  }

  /** Starts the inference worker on graphs already prepared. */
  static async start(
    prepared: PreparedModel,
    opts: { runtime: RuntimeOptions; warmKernels?: boolean },
  ): Promise<VlmPipeline> {
    const client = await InferenceClient.start(prepared.graphDir, prepared.manifest, opts.runtime, {
      warmKernels: opts.warmKernels,
    });
    return new VlmPipeline(prepared, client);
  }

  get checkpoint(): Checkpoint {
    return this.prepared.checkpoint;
  }

  /**
   * Answers about frames: preprocessing and the vision encoder run first. One frame takes the family's image
   * path when it has one (OneVision's anyres tiling), otherwise frames are a video.
   */
  async answer(
    frames: readonly Frame[],
    question: string,
    opts: AnswerOptions,
    onText?: (delta: string) => void,
  ): Promise<Answer> {
    if (frames.length === 0) throw new UsageError('no frames to answer about', 'give a video or at least one image');
    checkQuestion(question, this.checkpoint);
    const { family } = this.checkpoint;
    const t0 = performance.now();
    const vision =
      frames.length === 1 && family.prepareImage ? await family.prepareImage(frames[0]) : await family.prepare(frames);
    const preprocessMs = performance.now() - t0;
    const plan: VisualPlan = {
      units: vision.post?.units ?? vision.units,
      gridRows: vision.gridRows,
      gridCols: vision.gridCols,
      ...(vision.subgrids ? { subgrids: vision.subgrids } : {}),
    };
    return this.run(frames, plan, { vision }, question, opts, preprocessMs, onText);
  }

  /**
   * Runs preprocessing and the vision encoder on frames as they arrive (a camera), for answers later,
   * each frame its own visual unit: keys are kept only when a pruning method that reads them (ViTCoP's
   * VIC, VisionZip) may run.
   */
  async encode(frames: readonly Frame[], { keepKeys = true } = {}): Promise<EncodedFrame[]> {
    const encoded: EncodedFrame[] = [];
    for (const f of frames) {
      const vision = await this.client.encode(await this.checkpoint.family.prepare([f]));
      encoded.push({
        index: f.index,
        timestampS: f.timestampS,
        gridRows: vision.gridRows,
        gridCols: vision.gridCols,
        features: vision.features,
        saliency: vision.saliency,
        ...(keepKeys ? { keys: vision.keys } : {}),
      });
    }
    return encoded;
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
    const { gridRows, gridCols } = frames[0];
    const n = gridRows * gridCols;
    const width = frames[0].features.length / n;
    const keyWidth = frames.find((f) => f.keys)?.keys?.length ?? 0;
    const features = new Float32Array(frames.length * n * width);
    const saliency = new Float32Array(frames.length * n);
    const keys = new Float32Array(frames.length * keyWidth);
    for (const [i, f] of frames.entries()) {
      features.set(f.features, i * n * width);
      saliency.set(f.saliency, i * n);
      if (f.keys) keys.set(f.keys, i * keyWidth);
    }
    const encoded = {
      frames: frames.length,
      tokens: n,
      gridRows,
      gridCols,
      features,
      featureWidth: width,
      saliency,
      keys,
      keyWidth: keyWidth / n,
      keyHeads: this.prepared.manifest.visionHeads,
    };
    const plan = { units: frames.length, gridRows, gridCols };
    return this.run(frames, plan, { encoded }, question, opts, 0, onText);
  }

  private async run(
    frames: readonly (PromptFrame & { index: number })[],
    plan: VisualPlan,
    input: Pick<VisualQuery, 'vision' | 'encoded'>,
    question: string,
    opts: AnswerOptions,
    preprocessMs: number,
    onText?: (delta: string) => void,
  ): Promise<Answer> {
    const { config, tokenizer, family } = this.checkpoint;
    if (plan.subgrids && opts.prune && opts.prune.method !== 'none') {
      throw new UsageError(
        `${opts.prune.method} cannot prune a single image on ${config.modelType}: its tokens are grids of ` +
          'different shapes (a base tile and a tile grid), and pruning methods take units of one grid',
        'ask about the image without --method, or give two or more frames (a video)',
      );
    }
    const layout = family.layout(frames, plan, question);
    const positions = this.prepared.manifest.maxPositions;
    if (layout.nextPosition + opts.maxNewTokens > positions) {
      throw new UsageError(
        `${frames.length} frames, the question and ${opts.maxNewTokens} answer tokens need ` +
          `${layout.nextPosition + opts.maxNewTokens} positions; the model has ${positions}`,
        'ask about fewer frames (--frames), or lower --max-new-tokens',
      );
    }
    const eosTokenIds = opts.ignoreEos
      ? []
      : [...new Set([...config.text.eosTokenIds, ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId])])];

    const generated: number[] = [];
    let emitted = '';
    const result = await this.client.query(
      {
        ...input,
        frames: plan.units,
        tokensPerFrame: plan.gridRows * plan.gridCols,
        layout,
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
      promptTokens: layout.ids.length,
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

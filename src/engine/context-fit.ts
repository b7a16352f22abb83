import { UsageError } from '../errors.js';
import type { VisualPlan } from '../family/model-family.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { rejectPlaceholders } from './prompt.js';

export type PromptModel = Pick<Checkpoint, 'config' | 'tokenizer' | 'family'>;

export interface ContextFit {
  /** The most of the requested frames whose prompt and answer fit the context. */
  frames: number;
  /** Positions the model has (max_position_embeddings). */
  context: number;
  /** Prompt tokens with that many frames. */
  promptTokens: number;
}

/**
 * How many frames a question can be asked about. Every visual token keeps its original position
 * when pruned (methods.md §0), so the positions a prompt needs do not shrink with the pruning budget:
 * the prompt with all its frames' tokens plus the longest answer must fit max_position_embeddings.
 * `timestampsFor(k)` gives the timestamps the k frames would have (templates may print them); `planFor(k)`
 * their units and token grid when not the family's plan (a live window encodes each frame as its own unit).
 */
export function fitFramesToContext(
  model: PromptModel,
  question: string,
  requested: number,
  maxNewTokens: number,
  timestampsFor: (frames: number) => readonly number[],
  planFor: (frames: number) => VisualPlan = (k) => model.family.plan(k),
): ContextFit {
  const { config, family } = model;
  rejectPlaceholders(model, question);
  const context = config.text.maxPositionEmbeddings;
  const layoutFor = (k: number) =>
    family.layout(
      timestampsFor(k).map((timestampS) => ({ timestampS })),
      planFor(k),
      question,
    );
  // Positions, not rows, are what the context bounds (with M-RoPE a frame's tokens share a few positions).
  const fits = (k: number) => layoutFor(k).nextPosition + maxNewTokens <= context;
  if (!fits(1)) {
    const needed = layoutFor(1).nextPosition + maxNewTokens;
    throw new UsageError(
      `the question is too long for this model: one frame, the question and ${maxNewTokens} answer tokens ` +
        `need ${needed} positions, the model has ${context}`,
      'shorten the question or lower --max-new-tokens',
    );
  }
  // The prompt grows with every frame, so the largest k that fits is found by bisection.
  let lo = 1;
  let hi = requested;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return { frames: lo, context, promptTokens: layoutFor(lo).ids.length };
}

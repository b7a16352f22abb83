import type { PromptLayout } from '../engine/prompt-layout.js';
import type { VisionInput } from '../engine/vision-input.js';
import type { Frame } from '../media/frame.js';
import type { DecodeFit } from '../media/frame-plan.js';
import type { ChatTemplate } from '../model/chat-template.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import type { ModelConfig } from '../model/vlm-config.js';

/** The visual units some frames make and the LLM-level token grid of each. */
export interface VisualPlan {
  units: number;
  gridRows: number;
  gridCols: number;
  /**
   * When a unit is several token grids of different shapes, in token order (OneVision's image: the base
   * tile, then the tile grid); gridRows × gridCols is then 1 × their total. Pruning methods see units as
   * one grid, so the engine refuses to prune such a unit.
   */
  subgrids?: { rows: number; cols: number }[];
}

export interface PromptFrame {
  timestampS: number;
}

/**
 * What differs between VLM families on the main thread: how frames become the vision graph's inputs
 * (the family's Hugging Face processor), how many tokens they give, and the prompt around them (its
 * processor's placeholder expansion and position ids). The graphs and the decoder are generic.
 */
export interface ModelFamily {
  /** Vision inputs for the frames of one video (a single image is a one-frame video, unless prepareImage). */
  prepare(frames: readonly Frame[]): Promise<VisionInput>;
  /** The family's own path for a single image (OneVision's anyres tiling), used when the answer is about one frame. */
  prepareImage?(frame: Frame): Promise<VisionInput>;
  /** The units and token grid `frames` frames of `width`×`height` give, without pixels (context planning). */
  plan(frames: number, size?: { width: number; height: number }): VisualPlan;
  /** The prompt: the frames (with their timestamps) as the plan's units, then the question. */
  layout(frames: readonly PromptFrame[], plan: VisualPlan, question: string): PromptLayout;
  /** Token ids that must not appear in a question (image/video placeholders), with their text. */
  placeholders(): { id: number; text: string }[];
  /** The size frames are decoded at: what the processor's resize needs and no more (undefined: any). */
  decodeFit: DecodeFit | undefined;
  /** How kept tokens map onto a frame for `--show-kept` (square encoder input), when the family supports it. */
  overlay?: { imageSize: number; gridSize: number };
}

/** Ingredients every family builds its prompts from. */
export interface FamilyContext {
  dir: string;
  tokenizer: TextTokenizer;
  chatTemplate: ChatTemplate;
}

export type FamilyFactory<C extends ModelConfig> = (config: C, ctx: FamilyContext) => ModelFamily;

import { generateTokens, type Generated, type GenerationOptions } from './generate.js';
import type { ImageSpan } from './prompt.js';
import type { VlmRunner } from './vlm-runner.js';

/** Everything the inference side needs for one answer; plain data, so it crosses to a worker thread. */
export interface VisualQuery {
  /** [frames, 3, H, W] preprocessed pixels. */
  pixels: Float32Array;
  frames: number;
  promptIds: number[];
  imageSpans: ImageSpan[];
  generation: GenerationOptions;
}

export interface StageTimings {
  visionMs: number;
  projectMs: number;
  prefillMs: number;
  generateMs: number;
  /** Time to first token, from the start of the vision encoder. */
  firstTokenMs: number;
}

export interface VisualAnswer extends Generated {
  timings: StageTimings;
  visualTokens: { perFrame: number; input: number; layerAveraged: number };
  segmentRows: number[];
  kvBytes: { reserved: number; used: number };
}

/** Vision encoder → projector → prompt embeddings with image rows → prefill → decode loop. */
export async function runVisualQuery(runner: VlmRunner, q: VisualQuery, onToken?: (token: number) => void): Promise<VisualAnswer> {
  const d = runner.config.text.hiddenSize;
  const t0 = performance.now();
  const vision = await runner.encodeImages(q.pixels, q.frames);
  const t1 = performance.now();
  const imageTokens = await runner.project(vision.features, vision.frames * vision.tokens);
  const hidden = await runner.embed(q.promptIds);
  for (const span of q.imageSpans) {
    const src = span.frame * vision.tokens * d;
    hidden.set(imageTokens.subarray(src, src + span.length * d), span.start * d);
  }
  const t2 = performance.now();
  const positions = q.promptIds.map((_, i) => i);
  const prefill = await runner.prefill(hidden, positions, q.generation.maxNewTokens);
  const t3 = performance.now();
  let firstTokenMs = 0;
  const generated = await generateTokens(runner, prefill.logits, q.promptIds.length, q.generation, (token) => {
    if (!firstTokenMs) firstTokenMs = performance.now() - t0;
    onToken?.(token);
  });
  const t4 = performance.now();
  const input = q.imageSpans.reduce((a, s) => a + s.length, 0);
  return {
    ...generated,
    timings: { visionMs: t1 - t0, projectMs: t2 - t1, prefillMs: t3 - t2, generateMs: t4 - t3, firstTokenMs: firstTokenMs || t4 - t0 },
    visualTokens: { perFrame: vision.tokens, input, layerAveraged: input },
    segmentRows: prefill.segmentRows,
    kvBytes: runner.kvBytes(),
  };
}

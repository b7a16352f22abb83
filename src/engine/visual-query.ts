import type { Pairwise, PruneMethod, StageResult } from '../prune/types.js';
import { type Generated, type GenerationOptions, generateTokens } from './generate.js';
import { type PromptLayout, textTailRows } from './prompt-layout.js';
import { applySlots, assemblePrompt, type IdRows, type PromptRows, pruneVisualRows } from './token-sequence.js';
import type { VisionInput } from './vision-input.js';
import type { VisionOutputs, VlmRunner } from './vlm-runner.js';

/** Which pruning method a query uses and at what budget (layer-averaged fraction of F·N). */
export interface PruneRequest {
  method: string;
  budget: number;
  options: Record<string, unknown>;
  seed: number;
}

/** Everything the inference side needs for one answer; plain data, so it crosses to a worker thread. */
export interface VisualQuery {
  /** The vision graph's inputs, or (`encoded`) the vision encoder's outputs computed earlier. */
  vision?: VisionInput;
  /** The frames already encoded (a camera window): the query starts at the encoder-side pruning. */
  encoded?: VisionOutputs;
  /** Visual units (frames, or Qwen2-VL's temporal slices) and LLM tokens per unit. */
  frames: number;
  tokensPerFrame: number;
  layout: PromptLayout;
  generation: GenerationOptions;
  prune?: PruneRequest;
}

export interface StageTimings {
  visionMs: number;
  projectMs: number;
  prefillMs: number;
  generateMs: number;
  /** Time to first token, from the start of the vision encoder. */
  firstTokenMs: number;
  /** Host time inside pruning methods and applying their slots (included in the stages above). */
  pruneMs: number;
}

export interface VisualTokenReport {
  perFrame: number;
  /** Visual tokens entering the LLM (budget (a), methods.md §0). */
  input: number;
  /** Σ over decoder layers of visual tokens in the layer / L (budget (b)). */
  layerAveraged: number;
  /** Visual tokens after each stage that ran, in order. */
  stages: { stage: string; tokens: number }[];
  /** Original patch indices (within the frame) of the visual tokens that reached the last layer, per frame. */
  keptPerFrame: number[][];
}

export interface VisualAnswer extends Generated {
  timings: StageTimings;
  visualTokens: VisualTokenReport;
  segmentRows: number[];
  kvBytes: { reserved: number; used: number };
}

async function timed<T>(acc: { ms: number }, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    acc.ms += performance.now() - t0;
  }
}

/**
 * Vision encoder → [encoder-side pruning] → projector → [input pruning] → prompt with keep-original
 * positions → decoder segments with [in-LLM pruning] between them → decode loop.
 */
export async function runVisualQuery(
  runner: VlmRunner,
  q: VisualQuery,
  method?: PruneMethod,
  pairwise?: Pairwise,
  onToken?: (token: number) => void,
): Promise<VisualAnswer> {
  const cfg = runner.config;
  const d = cfg.text.hiddenSize;
  const L = cfg.text.numLayers;
  // The method's stages, bound to it (a method may keep state between its stages).
  const encoderStage = method?.encoder?.bind(method);
  const inputStage = method?.input?.bind(method);
  const layerStage = method?.layer?.bind(method);
  const kernel = (): Pairwise => {
    if (!pairwise) throw new Error('runVisualQuery: a pruning method needs the pairwise kernel');
    return pairwise;
  };
  const prune = { ms: 0 };
  const stages: { stage: string; tokens: number }[] = [];
  const stage = async (name: string, run: () => Promise<StageResult>, input: IdRows): Promise<IdRows> => {
    const result = await timed(prune, run);
    const out = await timed(prune, async () => applySlots(input, result.slots));
    stages.push({ stage: name, tokens: out.ids.length });
    return out;
  };

  const t0 = performance.now();
  const vision = await visionOutputs(runner, q);
  const N = vision.tokens;
  const base = { frames: q.frames, tokensPerFrame: N, gridRows: vision.gridRows, gridCols: vision.gridCols };
  let features: IdRows = {
    ids: Array.from({ length: q.frames * N }, (_, i) => i),
    rows: vision.features,
    width: vision.featureWidth,
  };
  stages.push({ stage: 'vision', tokens: features.ids.length });
  if (encoderStage) {
    features = await stage(
      'encoder',
      () =>
        encoderStage(
          {
            ...base,
            ids: features.ids,
            features: features.rows,
            saliency: vision.saliency,
            keys: vision.keys,
            featureWidth: vision.featureWidth,
            visionHidden: vision.keyWidth,
            visionHeads: vision.keyHeads,
          },
          kernel(),
        ),
      features,
    );
  }
  const t1 = performance.now();

  let visual: IdRows = { ids: features.ids, rows: await runner.project(features.rows, features.ids.length), width: d };
  const text = await runner.embed(q.layout.ids);
  putSeparators(text, q.layout, runner.separator, d);
  if (inputStage) {
    const textTail = text.slice((q.layout.ids.length - textTailRows(q.layout)) * d);
    const current = visual;
    visual = await stage(
      'input',
      () => inputStage({ ...base, ids: current.ids, tokens: current.rows, hidden: d, textTail }, kernel()),
      current,
    );
  }
  let prompt = assemblePrompt(text, q.layout, visual);
  const t2 = performance.now();

  const layers = new Set(method?.layer ? method.layers(L) : []);
  const prefill = await runner.prefill(prompt.hidden, prompt.positions, q.generation.maxNewTokens, async (state) => {
    prompt = { ...prompt, hidden: state.hidden };
    if (!layerStage || !layers.has(state.segment.end)) return prompt;
    const rows = prompt.visualIds.flatMap((id, i) => (id >= 0 ? [i] : []));
    const pick = (a: Float32Array) => Float32Array.from(rows, (i) => a[i]);
    const result = await timed(prune, () =>
      layerStage(
        {
          ...base,
          ids: rows.map((i) => prompt.visualIds[i]),
          layer: state.segment.end,
          kappa: pick(state.kappa),
          lastTokenAttention: state.lastTokenAttention && pick(state.lastTokenAttention),
        },
        kernel(),
      ),
    );
    prompt = await timed(prune, async () => pruneVisualRows(prompt, result.slots, q.layout, d));
    stages.push({ stage: `layer ${state.segment.end}`, tokens: prompt.visualIds.filter((id) => id >= 0).length });
    return prompt;
  });
  const t3 = performance.now();

  let firstTokenMs = 0;
  const generated = await generateTokens(runner, prefill.logits, q.layout.nextPosition, q.generation, (token) => {
    firstTokenMs ||= performance.now() - t0;
    onToken?.(token);
  });
  const t4 = performance.now();

  return {
    ...generated,
    timings: {
      visionMs: t1 - t0,
      projectMs: t2 - t1,
      prefillMs: t3 - t2,
      generateMs: t4 - t3,
      firstTokenMs: firstTokenMs || t4 - t0,
      pruneMs: prune.ms,
    },
    visualTokens: report(prefill.segmentRows, runner, q, visual.ids.length, stages, prompt, N, L),
    segmentRows: prefill.segmentRows,
    kvBytes: runner.kvBytes(),
  };
}

/** Writes the separator row into the prompt's separator rows. */
function putSeparators(embeddings: Float32Array, layout: PromptLayout, separator: Float32Array | undefined, d: number) {
  const rows = layout.separatorRows ?? [];
  if (rows.length === 0) return;
  if (!separator) throw new Error('the prompt has separator rows but the graphs have no separator row');
  for (const r of rows) embeddings.set(separator, r * d);
}

/** The query's frames through the vision encoder, unless they come encoded. */
async function visionOutputs(runner: VlmRunner, q: VisualQuery): Promise<VisionOutputs> {
  if (q.encoded) {
    if (q.encoded.frames !== q.frames) {
      throw new Error(`a query of ${q.frames} frames came with ${q.encoded.frames} encoded frames`);
    }
    return q.encoded;
  }
  if (!q.vision) throw new Error('a query needs vision inputs or encoded frames');
  return runner.encode(q.vision);
}

/** Layer-averaged and input budgets from the rows each segment actually processed. */
function report(
  segmentRows: number[],
  runner: VlmRunner,
  q: VisualQuery,
  input: number,
  stages: VisualTokenReport['stages'],
  last: PromptRows,
  N: number,
  L: number,
): VisualTokenReport {
  const textRows = q.layout.ids.length - q.layout.visualRows.length;
  const perLayer = runner.manifest.segments.reduce(
    (acc, s, i) => acc + (s.end - s.start) * (segmentRows[i] - textRows),
    0,
  );
  const keptPerFrame: number[][] = Array.from({ length: q.frames }, () => []);
  for (const id of last.visualIds) if (id >= 0) keptPerFrame[Math.floor(id / N)].push(id % N);
  return { perFrame: N, input, layerAveraged: perLayer / L, stages, keptPerFrame };
}

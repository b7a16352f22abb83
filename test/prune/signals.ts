import { applySlots, type IdRows } from '../../src/engine/token-sequence.js';
import type {
  BudgetRequest,
  EncoderSignals,
  InputSignals,
  LayerSignals,
  PruneMethod,
  StageResult,
  VisualTokens,
} from '../../src/prune/types.js';
import { Prng } from '../../src/synth/prng.js';
import { jsPairwise } from './js-pairwise.js';

export function randomArray(prng: Prng, length: number): Float32Array {
  return Float32Array.from({ length }, () => prng.next() * 2 - 1);
}

export function tokens(frames: number, side: number, ids?: number[]): VisualTokens {
  const N = side * side;
  return {
    frames,
    tokensPerFrame: N,
    gridRows: side,
    gridCols: side,
    ids: ids ?? Array.from({ length: frames * N }, (_, i) => i),
  };
}

export function request(frames: number, tokensPerFrame: number, budget: number, numLayers = 8): BudgetRequest {
  return { budget, frames, tokensPerFrame, numLayers, seed: 7 };
}

export interface Trace {
  results: StageResult[];
  /** Alive ids after each stage. */
  alive: number[][];
}

/**
 * Runs every stage a method has on random signals of F frames of side×side patches, applying slots the
 * way the engine does, with κ and the last-token attention drawn from `seed`.
 */
export async function runMethod(
  method: PruneMethod,
  frames: number,
  side: number,
  numLayers: number,
  seed: number,
): Promise<Trace> {
  const prng = new Prng(seed);
  const dv = 12;
  const d = 16;
  const base = tokens(frames, side);
  const n = base.ids.length;
  const trace: Trace = { results: [], alive: [] };
  const record = (rows: IdRows, result: StageResult) => {
    trace.results.push(result);
    const next = applySlots(rows, result.slots);
    trace.alive.push(next.ids);
    return next;
  };
  let rows: IdRows = { ids: base.ids, rows: randomArray(prng, n * dv), width: dv };
  if (method.encoder) {
    const signals: EncoderSignals = {
      ...base,
      features: rows.rows,
      featureWidth: dv,
      saliency: randomArray(prng, n),
      keys: randomArray(prng, n * dv),
      visionHidden: dv,
      visionHeads: 3,
    };
    rows = record(rows, await method.encoder(signals, jsPairwise));
  }
  rows = { ids: rows.ids, rows: randomArray(prng, rows.ids.length * d), width: d };
  if (method.input) {
    const signals: InputSignals = {
      ...base,
      ids: rows.ids,
      tokens: rows.rows,
      hidden: d,
      textTail: randomArray(prng, 5 * d),
    };
    rows = record(rows, await method.input(signals, jsPairwise));
  }
  for (const layer of method.layers(numLayers)) {
    const m = rows.ids.length;
    const signals: LayerSignals = {
      ...base,
      ids: rows.ids,
      layer,
      kappa: Float32Array.from({ length: m }, () => prng.next() + 0.5),
      lastTokenAttention: Float32Array.from({ length: m }, () => prng.next()),
    };
    rows = record(rows, await method.layer!(signals, jsPairwise));
  }
  return trace;
}

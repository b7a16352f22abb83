import { constantPlan, inputFrameQuotas, inputTokenTotal, roundHalfEven } from './budget.js';
import { num, readOptions } from './options.js';
import { keepSlot, mergeSlot, rowsByFrame, stageResult, topK } from './slots.js';
import type { EncoderSignals, MethodFactory, Slot } from './types.js';

/** Head-averaged keys of the given rows, each scaled to unit length (zero rows stay zero): [rows, dh]. */
function unitHeadMeanKeys(signals: EncoderSignals, rows: readonly number[]): Float32Array {
  const dv = signals.visionHidden;
  const heads = signals.visionHeads;
  const dh = dv / heads;
  const out = new Float32Array(rows.length * dh);
  rows.forEach((r, i) => {
    const k = out.subarray(i * dh, (i + 1) * dh);
    for (let h = 0; h < heads; h++) for (let j = 0; j < dh; j++) k[j] += signals.keys[r * dv + h * dh + j];
    const norm = Math.sqrt(dot(k, 0, k, 0, dh));
    if (norm > 0) for (let j = 0; j < dh; j++) k[j] /= norm;
  });
  return out;
}

function dot(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, width: number): number {
  let s = 0;
  for (let j = 0; j < width; j++) s += a[aOffset + j] * b[bOffset + j];
  return s;
}

/**
 * VisionZip at the encoder feature layer, per frame: the `dominant` share of the frame's quota goes to
 * the patches with the most CLS attention; the rest become `contextual` tokens: targets picked at a
 * uniform stride among the remaining patches, every other remaining patch assigned to its most similar
 * target (cosine of head-averaged keys, ties to the earlier target), value = target + mean(assigned).
 */
export const createVisionzip: MethodFactory = (request, options) => {
  const opts = readOptions('visionzip', options, { dominant: num(54, { min: 0 }), contextual: num(10, { min: 0 }) });
  const share = opts.dominant / (opts.dominant + opts.contextual || 1);
  const quotas = inputFrameQuotas(request);
  return {
    name: 'visionzip',
    layers: () => [],
    async encoder(signals) {
      const slots: Slot[] = [];
      rowsByFrame(signals).forEach((rows, f) => {
        const k = Math.min(quotas[f], rows.length);
        const dominant = topK(signals.saliency, roundHalfEven(k * share), 'largest', rows);
        slots.push(...dominant.map((r) => keepSlot(signals.ids[r])));
        const taken = new Set(dominant);
        const remaining = rows.filter((r) => !taken.has(r));
        const contextual = k - dominant.length;
        if (contextual === 0) return;
        const step = Math.max(1, Math.floor(remaining.length / contextual));
        const targets = Array.from({ length: contextual }, (_, t) => remaining[t * step]);
        const isTarget = new Set(targets);
        const others = remaining.filter((r) => !isTarget.has(r));
        const dh = signals.visionHidden / signals.visionHeads;
        const targetKeys = unitHeadMeanKeys(signals, targets);
        const otherKeys = unitHeadMeanKeys(signals, others);
        const assigned: number[][] = targets.map(() => []);
        others.forEach((r, i) => {
          let best = 0;
          let bestSim = -Infinity;
          for (let t = 0; t < targets.length; t++) {
            const sim = dot(otherKeys, i * dh, targetKeys, t * dh, dh);
            if (sim > bestSim) [best, bestSim] = [t, sim];
          }
          assigned[best].push(signals.ids[r]);
        });
        for (const [t, r] of targets.entries()) {
          const id = signals.ids[r];
          slots.push(assigned[t].length ? mergeSlot(assigned[t], 'anchor_plus_mean', id) : keepSlot(id));
        }
      });
      return stageResult(slots);
    },
    plannedTokensPerLayer: () => constantPlan(inputTokenTotal(request), request.numLayers),
  };
};

import { Prng } from '../synth/prng.js';
import {
  respentStageCounts,
  roundHalfEven,
  type VitcopBudget,
  type VitcopBudgetOptions,
  vitcopBudget,
  vitcopPlan,
} from './budget.js';
import { bool, choice, num, type OptionValues, optionalNum, readOptions } from './options.js';
import { rowCosine, squaredRowNorms } from './patch-similarity.js';
import {
  gatherRows,
  keepRows,
  keepSlot,
  mergeSlot,
  rowsByFrame,
  stageResult,
  topK,
  topKWithFrameMinimum,
} from './slots.js';
import type {
  BudgetRequest,
  EncoderSignals,
  LayerSignals,
  MethodFactory,
  Pairwise,
  PruneMethod,
  Slot,
  StageResult,
} from './types.js';
import { densityPeakClusters } from './vic.js';

const OPTIONS = {
  stage0: bool(true),
  /** Stage I's saliency: the encoder's (CLS attention / attention received), or a seeded random one (an ablation). */
  stage1: choice(['saliency', 'random'], 'saliency'),
  tau_static: num(0.9, { min: -1, max: 1 }),
  stage0_respend: bool(true),
  min_per_frame: num(1, { min: 0, integer: true }),
  stage3_min_per_frame: num(1, { min: 0, integer: true }),
  merge: choice(['mean', 'anchor_plus_mean'], 'mean'),
  dc_quantile: num(0.02, { min: 0, max: 1 }),
  dc: optionalNum({ min: 0 }),
  radius: num(0.6, { min: 0 }),
  S: num(2, { min: 1, integer: true }),
  D: optionalNum({ min: 1, integer: true }),
  D_fraction: num(0.69, { min: 0, max: 1 }),
  r_v: optionalNum({ min: Number.MIN_VALUE, max: 1 }),
  p: optionalNum({ min: 0, max: 1 }),
};
type Options = OptionValues<typeof OPTIONS>;

/** A VIC cluster: original ids (ascending) of one frame's Stage I tokens. */
interface Cluster {
  frame: number;
  members: number[];
}

/**
 * Stage 0: a patch whose feature-layer state has cosine ≥ tau_static with the latest kept patch at the
 * same grid position (from an earlier frame) is a static copy and is dropped; the kept patch's time span
 * grows to cover it. The first frame is kept whole; every frame keeps at least `minPerFrame` patches
 * (its least static ones), so no frame disappears. (Position-wise, F·N·dv work: no pairwise matrix.)
 */
function staticFilter(signals: EncoderSignals, frames: number[][], tau: number, minPerFrame: number) {
  const { ids, features: x, featureWidth: dv, tokensPerFrame: N } = signals;
  const squares = squaredRowNorms(x, dv);
  const latest = new Int32Array(N).fill(-1);
  const lastFrame = new Map<number, number>();
  const similarity = new Float64Array(ids.length).fill(-Infinity);
  const survivors = frames.map((rows, f) => {
    const moving: number[] = [];
    const still: number[] = [];
    for (const r of rows) {
      const ref = latest[ids[r] % N];
      if (f > 0 && ref >= 0) similarity[r] = rowCosine(x, r, x, ref, dv, squares[r], squares[ref]);
      (similarity[r] < tau ? moving : still).push(r);
    }
    const rescued = new Set(
      moving.length < minPerFrame ? topK(similarity, minPerFrame - moving.length, 'smallest', still) : [],
    );
    for (const r of still) {
      if (rescued.has(r)) latest[ids[r] % N] = r;
      else lastFrame.set(ids[latest[ids[r] % N]], f);
    }
    for (const r of moving) latest[ids[r] % N] = r;
    return rescued.size ? [...moving, ...rescued].sort((a, b) => a - b) : moving;
  });
  return { survivors, lastFrame };
}

/**
 * Stage I: each frame keeps its n1 most salient surviving patches. With `respend`, the quota that
 * frames with fewer survivors than n1 leave unused (Stage 0 dropped their static patches) goes to the
 * most salient remaining survivors of any frame, so Stage 0 moves the budget to what changes instead of
 * shrinking it.
 */
function stageOne(saliency: Float32Array, survivors: readonly number[][], n1: number, respend: boolean): number[][] {
  const kept = survivors.map((rows) => topK(saliency, n1, 'largest', rows));
  const spare = survivors.length * n1 - kept.reduce((a, rows) => a + rows.length, 0);
  if (!respend || spare === 0) return kept;
  const taken = new Set(kept.flat());
  const extra = new Set(
    topK(
      saliency,
      spare,
      'largest',
      survivors.flat().filter((r) => !taken.has(r)),
    ),
  );
  return survivors.map((rows, f) =>
    rows
      .filter((r) => extra.has(r))
      .concat(kept[f])
      .sort((a, b) => a - b),
  );
}

function randomScores(count: number, seed: number): Float32Array {
  const prng = new Prng(seed >>> 0);
  return Float32Array.from({ length: count }, () => prng.next());
}

/** Rows in one distance matrix: frames are batched up to this many rows so one ONNX Runtime call serves several. */
const MAX_DISTANCE_ROWS = 512;

/** Consecutive frames grouped so that each group's rows fit in `maxRows` (a larger frame goes alone). */
function frameBatches(rowsPerFrame: readonly number[][], maxRows: number): number[][] {
  const batches: number[][] = [];
  let batch: number[] = [];
  let size = Infinity;
  rowsPerFrame.forEach((rows, f) => {
    if (size + rows.length > maxRows) {
      batch = [];
      batches.push(batch);
      size = 0;
    }
    batch.push(f);
    size += rows.length;
  });
  return batches;
}

/** The [n, n] block of an [m, m] matrix that starts at row and column `offset`. */
function diagonalBlock(matrix: Float32Array, m: number, offset: number, n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) out.set(matrix.subarray((offset + i) * m + offset, (offset + i) * m + offset + n), i * n);
  return out;
}

/**
 * Stage II with fewer clusters than R: how many members of each cluster stay as they are, `slots` in
 * all. `rank` lists the clusters by ascending Σκ. A frame with fewer clusters than `minPerFrame` is
 * served first from its best clusters; the rest are shared by largest remainder in proportion to
 * |G_c| − 1 (less what the cluster already got), capped there, in exact integer arithmetic; equal
 * remainders go to the lower Σκ. The shares then sum to `slots` exactly whenever the clusters hold that
 * many spare members.
 */
export function individualSlotQuotas(
  clusters: readonly { frame: number; size: number }[],
  rank: readonly number[],
  slots: number,
  minPerFrame: number,
): number[] {
  const quota = new Array<number>(clusters.length).fill(0);
  const capacity = clusters.map((c) => c.size - 1);
  let left = slots;
  const clustersOfFrame = new Map<number, number[]>();
  for (const c of rank) {
    const own = clustersOfFrame.get(clusters[c].frame);
    if (own) own.push(c);
    else clustersOfFrame.set(clusters[c].frame, [c]);
  }
  for (const own of clustersOfFrame.values()) {
    let need = minPerFrame - own.length;
    for (const c of own) {
      const give = Math.max(0, Math.min(need, capacity[c] - quota[c], left));
      quota[c] += give;
      need -= give;
      left -= give;
    }
  }
  const weight = capacity.map((cap, c) => cap - quota[c]);
  const total = weight.reduce((a, b) => a + b, 0);
  if (left > 0 && total > 0) {
    const share = weight.map((w) => Math.floor((left * w) / total));
    const remainder = weight.map((w) => (left * w) % total);
    for (const [c, q] of share.entries()) quota[c] += q;
    const extra = left - share.reduce((a, b) => a + b, 0);
    for (const c of [...rank].sort((a, b) => remainder[b] - remainder[a]).slice(0, extra)) quota[c]++;
  }
  return quota;
}

/**
 * ViTCoP (methods.md §1): Stage 0 (video), Stage I and VIC at the encoder's feature layer; Stage II
 * co-pruning of the VIC clusters at layer S; Stage III K-norm pruning at layer D. The clusters found by
 * the encoder stage, and the Stage II/III counts, are kept on the instance for the rest of the query.
 */
class Vitcop implements PruneMethod {
  readonly name = 'vitcop';
  private clusters: Cluster[] = [];
  private counts: { R: number; n3: number };

  constructor(
    private readonly request: BudgetRequest,
    private readonly opts: Options,
    private readonly budgetOptions: VitcopBudgetOptions,
    readonly budget: VitcopBudget,
  ) {
    this.counts = { R: budget.R, n3: budget.n3 };
  }

  layers(): number[] {
    return [this.budget.S, this.budget.D];
  }

  plannedTokensPerLayer(): number[] {
    return vitcopPlan(this.budget, this.request.frames, this.request.numLayers);
  }

  async encoder(signals: EncoderSignals, pairwise: Pairwise): Promise<StageResult> {
    const frames = rowsByFrame(signals);
    const { survivors, lastFrame } = this.opts.stage0
      ? staticFilter(signals, frames, this.opts.tau_static, this.opts.min_per_frame)
      : { survivors: frames, lastFrame: new Map<number, number>() };
    const saliency =
      this.opts.stage1 === 'random' ? randomScores(signals.ids.length, this.request.seed) : signals.saliency;
    const kept = stageOne(saliency, survivors, this.budget.n1, this.opts.stage0_respend);
    const { ids, gridRows, gridCols, tokensPerFrame: N, visionHidden: dv } = signals;
    this.clusters = [];
    for (const batch of frameBatches(kept, MAX_DISTANCE_ROWS)) {
      const rows = batch.flatMap((f) => kept[f]);
      const all = await pairwise.euclidean(gatherRows(signals.keys, dv, rows), rows.length, dv);
      let offset = 0;
      for (const f of batch) {
        const n = kept[f].length;
        const dist = diagonalBlock(all, rows.length, offset, n);
        const coords = kept[f].map(
          (r) => [Math.floor((ids[r] % N) / gridCols) / gridRows, ((ids[r] % N) % gridCols) / gridCols] as const,
        );
        const labels = densityPeakClusters(dist, n, coords, {
          dcQuantile: this.opts.dc_quantile,
          dc: this.opts.dc,
          radius: this.opts.radius,
          centres: Math.max(1, Math.floor(this.budget.p * n)),
        });
        const groups: number[][] = [];
        for (const [i, r] of kept[f].entries()) {
          let group = groups[labels[i]];
          if (!group) {
            group = [];
            groups[labels[i]] = group;
          }
          group.push(ids[r]);
        }
        for (const members of groups) if (members) this.clusters.push({ frame: f, members });
        offset += n;
      }
    }
    const keptRows = kept.flat().sort((a, b) => a - b);
    const result = keepRows(signals, keptRows);
    const keptIds = new Set(keptRows.map((r) => ids[r]));
    result.timeSpans = [...lastFrame]
      .filter(([id]) => keptIds.has(id))
      .map(([id, last]) => ({ id, lastFrame: last }))
      .sort((a, b) => a.id - b.id);
    return result;
  }

  async layer(signals: LayerSignals): Promise<StageResult> {
    if (signals.layer === this.budget.S) return this.coPrune(signals);
    if (signals.layer === this.budget.D)
      return keepRows(
        signals,
        topKWithFrameMinimum(signals, signals.kappa, this.counts.n3, 'smallest', this.opts.stage3_min_per_frame),
      );
    throw new Error(`vitcop prunes at layers ${this.budget.S} and ${this.budget.D}, not ${signals.layer}`);
  }

  /**
   * Stage II: exactly R tokens from the VIC clusters, by their κ. When Stage 0 left Stage I fewer than
   * F·n1 tokens and re-spending is on, R and n3 grow to spend the token-layers that saved.
   */
  private coPrune(signals: LayerSignals): StageResult {
    const alive = signals.ids.length;
    this.counts =
      this.opts.stage0 && this.opts.stage0_respend && alive < this.request.frames * this.budget.n1
        ? respentStageCounts(this.budget, this.request, this.budgetOptions, alive)
        : { R: this.budget.R, n3: this.budget.n3 };
    const rowOf = new Int32Array(signals.frames * signals.tokensPerFrame).fill(-1);
    for (const [r, id] of signals.ids.entries()) rowOf[id] = r;
    const clusters = this.clusters.map((c) => {
      const kappa = c.members.map((id) => {
        const r = rowOf[id];
        if (!(r >= 0))
          throw new Error(`vitcop Stage II: token ${id} of a VIC cluster is not alive (did the encoder stage run?)`);
        return signals.kappa[r];
      });
      return { ...c, kappa, sum: kappa.reduce((a, b) => a + b, 0) };
    });
    if (!clusters.length) throw new Error('vitcop Stage II has no VIC clusters: the encoder stage must run first');
    // Rank = ascending Σκ (ties: earlier first member): the more important clusters come first.
    const rank = clusters
      .map((_, c) => c)
      .sort((a, b) => clusters[a].sum - clusters[b].sum || clusters[a].members[0] - clusters[b].members[0]);
    const R = Math.min(this.counts.R, alive);
    const K = clusters.length;
    const merge = this.opts.merge;
    const mpf = this.opts.min_per_frame;

    if (K >= R) {
      // R − 1 clusters stay (each merged to one token): first every frame's best min_per_frame, then the
      // best of the rest; all other clusters merge into the R-th token.
      const chosen = new Set<number>();
      const perFrame = new Map<number, number>();
      for (const c of rank) {
        const f = clusters[c].frame;
        if ((perFrame.get(f) ?? 0) < mpf && chosen.size < R - 1) {
          chosen.add(c);
          perFrame.set(f, (perFrame.get(f) ?? 0) + 1);
        }
      }
      for (const c of rank) if (chosen.size < R - 1) chosen.add(c);
      const rest = rank.filter((c) => !chosen.has(c)).flatMap((c) => clusters[c].members);
      return stageResult([...[...chosen].map((c) => mergeSlot(clusters[c].members, merge)), mergeSlot(rest, merge)]);
    }

    const quota = individualSlotQuotas(
      clusters.map((c) => ({ frame: c.frame, size: c.members.length })),
      rank,
      R - K,
      mpf,
    );
    const slots: Slot[] = [];
    clusters.forEach((c, k) => {
      const keep = new Set(topK(c.kappa, quota[k], 'smallest'));
      c.members.forEach((id, i) => {
        if (keep.has(i)) slots.push(keepSlot(id));
      });
      slots.push(
        mergeSlot(
          c.members.filter((_, i) => !keep.has(i)),
          merge,
        ),
      );
    });
    return stageResult(slots);
  }
}

export const createVitcop: MethodFactory = (request, options) => {
  const opts = readOptions('vitcop', options, OPTIONS);
  const budgetOptions: VitcopBudgetOptions = {
    S: opts.S,
    D: opts.D ?? roundHalfEven(opts.D_fraction * request.numLayers),
    minPerFrame: opts.min_per_frame,
    stage3MinPerFrame: opts.stage3_min_per_frame,
    r_v: opts.r_v,
    p: opts.p,
  };
  return new Vitcop(request, opts, budgetOptions, vitcopBudget(request, budgetOptions));
};

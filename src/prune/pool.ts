import { constantPlan, inputTokenTotal } from './budget.js';
import { num, readOptions } from './options.js';
import { mergeSlot, stageResult } from './slots.js';
import type { MethodFactory, Slot } from './types.js';

/**
 * The output grid for pooling a rows×cols grid to about `target` tokens: among the r×c whose aspect
 * ratio is within a factor `maxAspect` of the grid's (so bins stay patches, not strips), the one with
 * r·c nearest to the target; ties to the shape closest to the grid's aspect ratio, then to fewer rows.
 */
export function poolGrid(
  rows: number,
  cols: number,
  target: number,
  maxAspect: number,
): { rows: number; cols: number } {
  let best = { rows: 1, cols: 1, miss: Infinity, skew: Infinity };
  for (let r = 1; r <= rows; r++) {
    for (let c = 1; c <= cols; c++) {
      const miss = Math.abs(r * c - target);
      const skew = Math.abs(Math.log((r / c) * (cols / rows)));
      if (skew > Math.log(maxAspect) + 1e-9) continue;
      if (miss < best.miss - 1e-9 || (Math.abs(miss - best.miss) <= 1e-9 && skew < best.skew - 1e-9))
        best = { rows: r, cols: c, miss, skew };
    }
  }
  return { rows: best.rows, cols: best.cols };
}

/**
 * Spatial average pooling of each frame's projected token grid to the budget (LLaVA-Video pools after
 * the projector). The grid is cut into r×c non-overlapping bins, bin i spanning grid rows
 * ⌊i·rows/r⌋ .. ⌊(i+1)·rows/r⌋−1 (likewise for columns); each bin becomes the mean of its tokens.
 */
export const createPool: MethodFactory = (request, options) => {
  const { max_aspect: maxAspect } = readOptions('pool', options, { max_aspect: num(2, { min: 1 }) });
  const perFrame = inputTokenTotal(request) / request.frames;
  return {
    name: 'pool',
    layers: () => [],
    async input(signals) {
      const { gridRows, gridCols, tokensPerFrame: N } = signals;
      if (gridRows * gridCols !== N) throw new Error(`pool: a ${gridRows}×${gridCols} grid does not hold ${N} tokens`);
      const out = poolGrid(gridRows, gridCols, perFrame, maxAspect);
      const alive = new Set(signals.ids);
      const slots: Slot[] = [];
      for (let f = 0; f < signals.frames; f++) {
        for (let i = 0; i < out.rows; i++) {
          for (let j = 0; j < out.cols; j++) {
            const members: number[] = [];
            for (let r = Math.floor((i * gridRows) / out.rows); r < Math.floor(((i + 1) * gridRows) / out.rows); r++) {
              for (
                let c = Math.floor((j * gridCols) / out.cols);
                c < Math.floor(((j + 1) * gridCols) / out.cols);
                c++
              ) {
                const id = f * N + r * gridCols + c;
                if (alive.has(id)) members.push(id);
              }
            }
            if (members.length) slots.push(mergeSlot(members, 'mean'));
          }
        }
      }
      return stageResult(slots);
    },
    // The request has no grid; vision towers' patch grids are square (a 1×N strip otherwise).
    plannedTokensPerLayer() {
      const side = Math.sqrt(request.tokensPerFrame);
      const g = Number.isInteger(side)
        ? poolGrid(side, side, perFrame, maxAspect)
        : poolGrid(1, request.tokensPerFrame, perFrame, Infinity);
      return constantPlan(request.frames * g.rows * g.cols, request.numLayers);
    },
  };
};

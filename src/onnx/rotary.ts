import type { GraphBuilder } from './graph-builder.js';

/** rotate_half: (x1, x2) → (−x2, x1) over the last axis of width `width`. */
export function rotateHalf(g: GraphBuilder, t: string, width: number): string {
  const [first, second] = g.opN('Split', [t, g.int64([width / 2, width / 2])], { axis: -1 }, 2);
  return g.op('Concat', [g.op('Neg', [second]), first], { axis: -1 });
}

/**
 * Qwen2-VL's M-RoPE (apply_multimodal_rotary_pos_emb), which the RotaryEmbedding contrib op cannot do:
 * positions are int64 [3, 1, seq] (rows t, h, w), and rotary pair i of each half of head_dim turns with
 * the t, h or w row as `section` ([t, h, w] pair counts) assigns it. cos/sin are gathered once per graph
 * from the plain tables [maxPositions, headDim/2]; the returned function rotates [1, seq, heads·headDim].
 */
export function mropeRotation(
  g: GraphBuilder,
  positions: string,
  cosTable: string,
  sinTable: string,
  section: readonly number[],
  headDim: number,
): (t: string, heads: number) => string {
  const perRow = (table: string) => {
    let start = 0;
    const parts = section.map((pairs, axis) => {
      const rows = g.op('Gather', [positions, g.int64([axis], true)], { axis: 0 });
      const columns = g.op('Slice', [table, g.int64([start]), g.int64([start + pairs]), g.int64([1])]);
      start += pairs;
      return g.op('Gather', [columns, rows], { axis: 0 });
    });
    const half = g.op('Concat', parts, { axis: -1 });
    return g.op('Unsqueeze', [g.op('Concat', [half, half], { axis: -1 }), g.int64([2])]);
  };
  const cos = perRow(cosTable);
  const sin = perRow(sinTable);
  return (t, heads) => {
    const x = g.op('Reshape', [t, g.int64([0, 0, heads, headDim])]);
    const rotated = g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rotateHalf(g, x, headDim), sin])]);
    return g.op('Reshape', [rotated, g.int64([0, 0, heads * headDim])]);
  };
}

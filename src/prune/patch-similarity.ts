/** Squared L2 norm of every row of a row-major [rows, width] matrix. */
export function squaredRowNorms(x: Float32Array, width: number): Float64Array {
  const squares = new Float64Array(x.length / width);
  for (let r = 0; r < squares.length; r++) {
    let s = 0;
    for (let j = r * width; j < (r + 1) * width; j++) s += x[j] * x[j];
    squares[r] = s;
  }
  return squares;
}

/**
 * Cosine of row `a` of `x` and row `b` of `y`, given their squared norms. The same summation order as
 * squaredRowNorms, so identical rows give exactly 1 and ties stay ties. Zero rows give 0.
 */
export function rowCosine(
  x: Float32Array,
  a: number,
  y: Float32Array,
  b: number,
  width: number,
  squareA: number,
  squareB: number,
): number {
  let dot = 0;
  for (let j = 0, i = a * width, k = b * width; j < width; j++) dot += x[i + j] * y[k + j];
  const scale = squareA * squareB;
  return scale > 0 ? dot / Math.sqrt(scale) : 0;
}

/**
 * ViTCoP Stage 0's test over a whole frame: the fraction of its patches whose feature-layer state has
 * cosine ≥ `tau` with the patch at the same grid position of `reference` ([tokens, width] each).
 */
export function staticFraction(frame: Float32Array, reference: Float32Array, width: number, tau: number): number {
  const a = squaredRowNorms(frame, width);
  const b = squaredRowNorms(reference, width);
  let still = 0;
  for (let p = 0; p < a.length; p++) if (rowCosine(frame, p, reference, p, width, a[p], b[p]) >= tau) still++;
  return still / a.length;
}

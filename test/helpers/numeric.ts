/** Max |a−b| / max(|b|) over the arrays: the "relative error" the parity tests bound. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ expected ${expected.length}`);
  let maxDiff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return maxDiff / (scale || 1);
}

export function flatten(nested: unknown): number[] {
  return Array.isArray(nested) ? nested.flatMap(flatten) : [nested as number];
}

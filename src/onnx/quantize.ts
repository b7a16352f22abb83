/**
 * Block quantisation of a Linear weight W [N, K] in the layout of ONNX Runtime's com.microsoft
 * MatMulNBits: each row's K values in blocks of `blockSize`, every block with its own float scale and
 * uint8 zero point (asymmetric, as ORT's own quantiser does by default); codes packed low bits first.
 * The last block of a row is padded with zeros when K is not a multiple of the block size.
 */
export interface BlockQuantized {
  bits: 4 | 8;
  blockSize: number;
  n: number;
  k: number;
  kBlocks: number;
  /** [N, kBlocks, blockSize·bits/8] packed codes. */
  codes: Uint8Array;
  /** [N, kBlocks] scales. */
  scales: Float32Array;
  /** Zero points: 8-bit: [N·kBlocks]; 4-bit: two per byte, [N·⌈kBlocks/2⌉]. */
  zeroPoints: Uint8Array;
}

export function quantizeBlocks(weight: Float32Array, n: number, k: number, bits: 4 | 8, blockSize: number) {
  const kBlocks = Math.ceil(k / blockSize);
  const blob = (blockSize * bits) / 8;
  const maxCode = 2 ** bits - 1;
  const codes = new Uint8Array(n * kBlocks * blob);
  const scales = new Float32Array(n * kBlocks);
  const zpPerRow = bits === 8 ? kBlocks : Math.ceil(kBlocks / 2);
  const zeroPoints = new Uint8Array(n * zpPerRow);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < kBlocks; b++) {
      const start = row * k + b * blockSize;
      const end = row * k + Math.min((b + 1) * blockSize, k);
      // The range always includes 0, so zero weights (and the padding) are exact.
      let lo = 0;
      let hi = 0;
      for (let i = start; i < end; i++) {
        lo = Math.min(lo, weight[i]);
        hi = Math.max(hi, weight[i]);
      }
      const scale = hi > lo ? Math.fround((hi - lo) / maxCode) : 1;
      const zp = Math.min(maxCode, Math.max(0, Math.round(-lo / scale)));
      scales[row * kBlocks + b] = scale;
      setNibbleOrByte(zeroPoints, row * zpPerRow, b, zp, bits);
      const blockBase = (row * kBlocks + b) * blob;
      for (let j = 0; j < blockSize; j++) {
        const value = start + j < end ? weight[start + j] : 0;
        const code = Math.min(maxCode, Math.max(0, Math.round(value / scale) + zp));
        setNibbleOrByte(codes, blockBase, j, code, bits);
      }
    }
  }
  return { bits, blockSize, n, k, kBlocks, codes, scales, zeroPoints } satisfies BlockQuantized;
}

/** W [N, K] back from its blocks: (code − zero point) · scale. */
export function dequantizeBlocks(q: BlockQuantized): Float32Array {
  const { bits, blockSize, n, k, kBlocks } = q;
  const blob = (blockSize * bits) / 8;
  const zpPerRow = bits === 8 ? kBlocks : Math.ceil(kBlocks / 2);
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < k; col++) {
      const b = Math.floor(col / blockSize);
      const code = nibbleOrByte(q.codes, (row * kBlocks + b) * blob, col % blockSize, bits);
      const zp = nibbleOrByte(q.zeroPoints, row * zpPerRow, b, bits);
      out[row * k + col] = (code - zp) * q.scales[row * kBlocks + b];
    }
  }
  return out;
}

function setNibbleOrByte(buf: Uint8Array, base: number, index: number, value: number, bits: 4 | 8): void {
  if (bits === 8) {
    buf[base + index] = value;
    return;
  }
  const at = base + (index >> 1);
  buf[at] = index & 1 ? (buf[at] & 0x0f) | (value << 4) : (buf[at] & 0xf0) | value;
}

function nibbleOrByte(buf: Uint8Array, base: number, index: number, bits: 4 | 8): number {
  if (bits === 8) return buf[base + index];
  const byte = buf[base + (index >> 1)];
  return index & 1 ? byte >> 4 : byte & 0x0f;
}

/**
 * Per-output-channel symmetric int8 quantisation of a Linear weight W [N, K] for com.microsoft
 * DynamicQuantizeMatMul: codes transposed to [K, N] (MatMul's B), one scale per output column, no zero
 * point. ONNX Runtime quantises the activations per tensor at run time and multiplies in integers.
 */
export function quantizeColumnsInt8(weight: Float32Array, n: number, k: number) {
  const scales = new Float32Array(n);
  const codes = new Int8Array(k * n);
  for (let row = 0; row < n; row++) {
    let max = 0;
    for (let c = 0; c < k; c++) max = Math.max(max, Math.abs(weight[row * k + c]));
    const scale = max / 127 || 1;
    scales[row] = scale;
    for (let c = 0; c < k; c++) codes[c * n + row] = Math.round(weight[row * k + c] / scale);
  }
  return { codes, scales };
}

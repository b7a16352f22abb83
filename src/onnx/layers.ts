import { ModelError } from '../errors.js';
import type { Activation } from '../model/vlm-config.js';
import { float, type GraphBuilder, MS_DOMAIN } from './graph-builder.js';
import { type BlockQuantized, quantizeBlocks, quantizeColumnsInt8 } from './quantize.js';

/** What the graph builders need from a checkpoint's weights (src/model/safetensors.ts provides it). */
export interface WeightReader {
  has(name: string): boolean;
  shape(name: string): readonly number[];
  get(name: string): Float32Array;
}

/** Weight storage: float, or (int8/int4) block-quantised Linear weights with the other tensors in fp16. */
export const WEIGHT_DTYPES = ['fp32', 'fp16', 'int8', 'int4'] as const;
export type WeightDtype = (typeof WEIGHT_DTYPES)[number];

/**
 * What a graph's weights are stored as: a WeightDtype, or 'int8-dynamic' — Linear weights as per-channel
 * int8 for DynamicQuantizeMatMul (activations quantised at run time: the vision encoders' choice, where
 * many tokens go through each MatMul at once and integer GEMM beats float32 on CPUs with int8 dot products).
 */
export type GraphDtype = WeightDtype | 'int8-dynamic';

/** Vision-side graphs: float, or int8 with dynamically quantised activations. */
export const VISION_DTYPES = ['fp32', 'fp16', 'int8'] as const;
export type VisionDtype = (typeof VISION_DTYPES)[number];

/**
 * The vision dtype that goes with a decoder dtype: the same float type; with quantised decoder weights,
 * int8 on the CPU (1.9× faster SigLIP-base at 384 px, docs/benchmarks.md) and fp16 storage elsewhere
 * (GPU providers have no DynamicQuantizeMatMul kernel).
 */
export function defaultVisionDtype(dtype: WeightDtype, ep = 'cpu'): VisionDtype {
  if (dtype === 'fp32' || dtype === 'fp16') return dtype;
  return ep === 'cpu' ? 'int8' : 'fp16';
}

export function visionGraphDtype(dtype: VisionDtype): GraphDtype {
  return dtype === 'int8' ? 'int8-dynamic' : dtype;
}

export const DEFAULT_QUANT_BLOCK = 32;

/**
 * Adds checkpoint weights to a graph. With fp16 the weights are stored as float16 and cast to float32
 * in the graph: ONNX Runtime folds the cast when it loads the session, so the files are half the size
 * while the CPU still computes in float32. With int8/int4, Linear weights become MatMulNBits blocks
 * (read as such at every decode step: the point is fewer bytes per token) and other tensors are fp16.
 */
export class WeightLoader {
  constructor(
    readonly g: GraphBuilder,
    readonly reader: WeightReader,
    readonly dtype: GraphDtype,
    readonly blockSize = DEFAULT_QUANT_BLOCK,
    /**
     * MatMulNBits' accuracy_level: 4 lets ONNX Runtime quantise the activations to int8 per block and use
     * its integer kernels. Its int8 weights have no fast path without it (31× slower than level 4 for a
     * 896×4864 MatMul at M = 1 here); 0 computes in fp32, exactly the dequantised product.
     */
    readonly accuracyLevel: 0 | 4 = 4,
  ) {}

  shape(name: string): readonly number[] {
    if (!this.reader.has(name))
      throw new ModelError(
        `the checkpoint has no tensor ${name}`,
        'is it a complete Hugging Face checkpoint of a supported architecture?',
      );
    return this.reader.shape(name);
  }

  private add(name: string, dims: readonly number[], produce: () => Float32Array): string {
    if (this.dtype === 'fp32') return this.g.weight(name, 'float32', dims, produce);
    const half = this.g.weight(`${name}.fp16`, 'float16', dims, () => toFloat16(produce()));
    return this.g.op('Cast', [half], { to: 1 }, { name: `${name}.cast` });
  }

  /** A tensor as stored. */
  tensor(name: string): string {
    return this.add(name, this.shape(name), () => this.reader.get(name));
  }

  /** A Linear weight [out, in] transposed to [in, out] for MatMul. */
  transposed(name: string): string {
    const [rows, cols] = this.shape(name);
    return this.add(`${name}.T`, [cols, rows], () => transpose(this.reader.get(name), rows, cols));
  }

  /** x · Wᵀ for a weight W [out, in] (a Linear's, or a tied LM head's embedding table). */
  matmulT(x: string, name: string): string {
    if (this.dtype === 'int8-dynamic') return this.dynamicInt8(x, name);
    if (this.dtype !== 'int8' && this.dtype !== 'int4') return this.g.op('MatMul', [x, this.transposed(name)]);
    const bits = this.dtype === 'int8' ? 8 : 4;
    const [n, k] = this.shape(name);
    // Produced once and shared by the three initialisers, which the writer asks for one after another.
    let cached: BlockQuantized | undefined;
    const blocks = () => {
      cached ??= quantizeBlocks(this.reader.get(name), n, k, bits, this.blockSize);
      return cached;
    };
    const kBlocks = Math.ceil(k / this.blockSize);
    const blob = (this.blockSize * bits) / 8;
    const codes = this.g.weight(`${name}.q${bits}`, 'uint8', [n, kBlocks, blob], () => blocks().codes);
    const scales = this.g.weight(`${name}.scales`, 'float32', [n, kBlocks], () => blocks().scales);
    const zpBytes = n * (bits === 8 ? kBlocks : Math.ceil(kBlocks / 2));
    const zeroPoints = this.g.weight(`${name}.zero_points`, 'uint8', [zpBytes], () => {
      const zp = blocks().zeroPoints;
      cached = undefined;
      return zp;
    });
    return this.g.op(
      'MatMulNBits',
      [x, codes, scales, zeroPoints],
      { K: k, N: n, bits, block_size: this.blockSize, accuracy_level: this.accuracyLevel },
      { domain: MS_DOMAIN },
    );
  }

  private dynamicInt8(x: string, name: string): string {
    const [n, k] = this.shape(name);
    let cached: ReturnType<typeof quantizeColumnsInt8> | undefined;
    const quantized = () => {
      cached ??= quantizeColumnsInt8(this.reader.get(name), n, k);
      return cached;
    };
    const codes = this.g.weight(`${name}.qi8`, 'int8', [k, n], () => quantized().codes);
    const scales = this.g.weight(`${name}.col_scales`, 'float32', [n], () => {
      const s = quantized().scales;
      cached = undefined;
      return s;
    });
    return this.g.op('DynamicQuantizeMatMul', [x, codes, scales], {}, { domain: MS_DOMAIN });
  }
}

export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const dst = new Float32Array(src.length);
  const block = 64;
  for (let r0 = 0; r0 < rows; r0 += block) {
    for (let c0 = 0; c0 < cols; c0 += block) {
      const rEnd = Math.min(r0 + block, rows);
      const cEnd = Math.min(c0 + block, cols);
      for (let r = r0; r < rEnd; r++) for (let c = c0; c < cEnd; c++) dst[c * rows + r] = src[r * cols + c];
    }
  }
  return dst;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE float32 → float16 bits, round to nearest even. */
export function toFloat16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && half & 1)) half++;
      out[i] = sign | half;
    } else {
      let half = (e << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
      out[i] = sign | half;
    }
  }
  return out;
}

export function linear(w: WeightLoader, x: string, prefix: string, bias: boolean): string {
  const y = w.matmulT(x, `${prefix}.weight`);
  return bias ? w.g.op('Add', [y, w.tensor(`${prefix}.bias`)]) : y;
}

export function layerNorm(w: WeightLoader, x: string, prefix: string, eps: number): string {
  return w.g.op('LayerNormalization', [x, w.tensor(`${prefix}.weight`), w.tensor(`${prefix}.bias`)], {
    axis: -1,
    epsilon: float(eps),
  });
}

/** RMSNorm as ONNX Runtime's fused SimplifiedLayerNormalization (registered in the ONNX domain). */
export function rmsNorm(w: WeightLoader, x: string, weightName: string, eps: number): string {
  return w.g.op('SimplifiedLayerNormalization', [x, w.tensor(weightName)], { axis: -1, epsilon: float(eps) });
}

export function activation(g: GraphBuilder, x: string, act: Activation): string {
  switch (act) {
    case 'gelu': {
      // 0.5·x·(1 + erf(x/√2)), the exact GELU of torch.nn.functional.gelu.
      const erf = g.op('Erf', [g.op('Mul', [x, g.scalar(Math.SQRT1_2)])]);
      return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [erf, g.scalar(1)])]);
    }
    case 'gelu_tanh':
      return g.op('FastGelu', [x], {}, { domain: MS_DOMAIN });
    case 'quick_gelu':
      return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.scalar(1.702)])])]);
    case 'silu':
      return g.op('Mul', [x, g.op('Sigmoid', [x])]);
    case 'relu':
      return g.op('Relu', [x]);
  }
}

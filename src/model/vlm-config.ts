import type { Idefics3Config } from './idefics3-config.js';
import type { OnevisionConfig } from './onevision-config.js';
import type { Qwen2VlConfig } from './qwen2vl-config.js';

/** The normalised description of a checkpoint that every other part of vlm-sieve works from. */

export type VisionFamily = 'clip' | 'siglip';
export type TextFamily = 'llama' | 'qwen2';
export type Activation = 'gelu' | 'gelu_tanh' | 'quick_gelu' | 'silu' | 'relu';

export interface VisionConfig {
  family: VisionFamily;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  layerNormEps: number;
  act: Activation;
  /** CLIP has a class token (and a pre-layernorm); SigLIP has neither. */
  hasClassToken: boolean;
  /** Index into hidden_states (0 = embeddings output, i = output of encoder layer i) the projector reads. */
  featureLayer: number;
  /** 'default' drops the class token, 'full' keeps every token. */
  selectStrategy: 'default' | 'full';
  /** Patches per side: imageSize / patchSize. */
  gridSize: number;
}

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear' | 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface TextConfig {
  family: TextFamily;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** `rope_scaling` of the config; 'dynamic' equals plain RoPE within maxPositionEmbeddings, all the graphs allow. */
  ropeScaling?: RopeScaling;
  /** Qwen2-VL's M-RoPE: rotary pairs per (t, h, w) axis; position ids then have 3 numbers per row. */
  mropeSection?: number[];
  /** Qwen2: q/k/v projections have a bias. */
  qkvBias: boolean;
  /** Llama `attention_bias` also puts a bias on o_proj (Qwen2 never does). */
  oProjBias: boolean;
  mlpBias: boolean;
  act: Activation;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

export interface ProjectorConfig {
  act: Activation;
  /** linear_1 input width (vision hidden) and output width (text hidden). */
  inputSize: number;
  hiddenSize: number;
  outputSize: number;
  bias: boolean;
}

export interface VlmConfig {
  modelType: 'llava';
  vision: VisionConfig;
  text: TextConfig;
  projector: ProjectorConfig;
  imageTokenId: number;
  /** Visual tokens per frame after the select strategy: gridSize² for CLIP 'default' and SigLIP 'full'. */
  tokensPerImage: number;
}

/** Any supported checkpoint's configuration, told apart by `modelType`. */
export type ModelConfig = VlmConfig | Qwen2VlConfig | Idefics3Config | OnevisionConfig;

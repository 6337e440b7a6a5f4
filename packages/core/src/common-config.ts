/** The fields every family's `config.json` shares (parseCommon) and the per-head size rule (headDimOf). */
import { ConfigError } from './errors.js';
import type { ConfigFields } from './config-fields.js';
import { type RopeConfig, parseRope } from './rope-config.js';

export interface CommonModelConfig {
  vocabSize: number;
  hiddenSize: number;
  /** Dense MLP size (DeepSeek: the first_k_dense_replace layers). */
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /**
   * Per-head size of queries and keys. Llama: `head_dim`, or hidden / heads.
   * DeepSeek: qkNopeHeadDim + qkRopeHeadDim (transformers stores the rope part
   * alone as `head_dim` there; that is qkRopeHeadDim here).
   */
  headDim: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  hiddenAct: string;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  rope: RopeConfig;
  /**
   * The checkpoint's torch dtype (`dtype` / `torch_dtype`). Transformers casts
   * the rotary `inv_freq` buffer with `model.to(dtype)`, so bf16 models rotate
   * with bf16-rounded frequencies; the rotary module reproduces that.
   */
  dtype: string;
}

export function parseCommon(f: ConfigFields, defaults: { maxPositionEmbeddings: number }): Omit<CommonModelConfig, 'headDim'> {
  const numAttentionHeads = f.int('num_attention_heads');
  const numKeyValueHeads = f.int('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ConfigError(
      `${f.source}: num_attention_heads=${numAttentionHeads} is not a multiple of num_key_value_heads=${numKeyValueHeads}`,
    );
  }
  const maxPositionEmbeddings = f.int('max_position_embeddings', defaults.maxPositionEmbeddings);
  return {
    vocabSize: f.int('vocab_size'),
    hiddenSize: f.int('hidden_size'),
    intermediateSize: f.int('intermediate_size'),
    numHiddenLayers: f.int('num_hidden_layers'),
    numAttentionHeads,
    numKeyValueHeads,
    rmsNormEps: f.positive('rms_norm_eps', 1e-6),
    maxPositionEmbeddings,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    attentionBias: f.bool('attention_bias', false),
    mlpBias: f.bool('mlp_bias', false),
    hiddenAct: f.str('hidden_act', 'silu'),
    bosTokenId: asSingleId(f.tokenIds('bos_token_id'), f.source),
    eosTokenId: f.tokenIds('eos_token_id'),
    rope: parseRope(f.json, f.source, maxPositionEmbeddings),
    dtype: f.str('dtype', f.str('torch_dtype', 'float32')),
  };
}

/** `head_dim` when given (Qwen3 sets it apart from hidden/heads), else hidden_size / num_attention_heads. */
export function headDimOf(f: ConfigFields, c: Omit<CommonModelConfig, 'headDim'>): number {
  if (f.has('head_dim')) return f.int('head_dim');
  if (c.hiddenSize % c.numAttentionHeads === 0) return c.hiddenSize / c.numAttentionHeads;
  throw new ConfigError(`${f.source}: no head_dim, and hidden_size=${c.hiddenSize} is not divisible by num_attention_heads=${c.numAttentionHeads}`);
}

function asSingleId(ids: number | number[] | null, source: string): number | null {
  if (Array.isArray(ids)) {
    if (ids.length === 1) return ids[0]!;
    throw new ConfigError(`${source}: "bos_token_id" must be one token id, got ${JSON.stringify(ids)}`);
  }
  return ids;
}

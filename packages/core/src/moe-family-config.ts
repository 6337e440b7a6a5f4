/**
 * config.json of the sparse-MoE families beside DeepSeek: Qwen3-MoE
 * (`qwen3_moe`) and Mixtral (`mixtral`), normalized with transformers'
 * defaults. Options weft does not implement are refused here, naming the
 * field, rather than silently computing something else.
 */
import { ConfigError } from './errors.js';
import { divide } from './shape.js';
import type { ConfigFields } from './config-fields.js';
import { headDimOf } from './common-config.js';
import type { DenseAttentionFields } from './dense-family-config.js';
import { parseCommon, type CommonModelConfig } from './common-config.js';

/** Routing shared by both families: softmax over `numExperts` router logits, top `numExpertsPerTok`. */
interface SoftmaxMoEFields {
  /** Qwen3-MoE `num_experts`, Mixtral `num_local_experts`. */
  numExperts: number;
  numExpertsPerTok: number;
  /** Per-expert intermediate size (Mixtral: `intermediate_size`). */
  moeIntermediateSize: number;
  /** Divide the chosen softmax weights by their sum (Mixtral always does). */
  normTopkProb: boolean;
}

/** Attention: Qwen3's (q_norm / k_norm before rotary, `head_dim` apart from hidden/heads). */
export interface Qwen3MoeConfig extends CommonModelConfig, DenseAttentionFields, SoftmaxMoEFields {
  family: 'qwen3_moe';
  modelType: 'qwen3_moe';
  /** Every `decoder_sparse_step`-th layer (1-based) is MoE... */
  decoderSparseStep: number;
  /** ...unless listed here (0-based), which get a dense MLP of `intermediate_size`. */
  mlpOnlyLayers: number[];
}

/** Attention: Mistral's (Llama's, with an optional sliding window on every layer). */
export interface MixtralConfig extends CommonModelConfig, DenseAttentionFields, SoftmaxMoEFields {
  family: 'mixtral';
  modelType: 'mixtral';
}

/** transformers' Qwen3MoeConfig (and vLLM's qwen3_moe.py). */
export function parseQwen3Moe(f: ConfigFields): Qwen3MoeConfig {
  const common = parseCommon(f, { maxPositionEmbeddings: 32768 });
  // Qwen3MoeConfig keeps sliding_window only with use_sliding_window, and then every layer slides (no max_window_layers).
  const slidingWindow = f.bool('use_sliding_window', false) ? f.intOrNull('sliding_window', 4096) : null;
  if (slidingWindow === 0) throw new ConfigError(`${f.source}: "sliding_window" must be a positive integer or null, got 0`);
  const numExperts = expertCount(f, 'num_experts', 'num_local_experts', 128);
  const numLayers = common.numHiddenLayers;
  const mlpOnlyLayers = f.has('mlp_only_layers') ? layerList(f, 'mlp_only_layers', numLayers) : [];
  const headDim = headDimOf(f, common);
  const config: Qwen3MoeConfig = {
    family: 'qwen3_moe',
    modelType: 'qwen3_moe',
    ...common,
    headDim,
    // Qwen3MoeAttention: attention_bias on all four projections, q_norm / k_norm.
    ...globalAttention(headDim, common.attentionBias),
    qkNorm: true,
    slidingWindow,
    mlpBias: false,
    numExperts,
    numExpertsPerTok: f.int('num_experts_per_tok', 8),
    moeIntermediateSize: f.int('moe_intermediate_size', 768),
    normTopkProb: f.bool('norm_topk_prob', false),
    decoderSparseStep: f.int('decoder_sparse_step', 1),
    mlpOnlyLayers,
  };
  checkTopK(config, f.source);
  checkSilu(config.hiddenAct, f.source);
  return config;
}

/** transformers' MixtralConfig (and vLLM's mixtral.py). */
export function parseMixtral(f: ConfigFields): MixtralConfig {
  const common = parseCommon(f, { maxPositionEmbeddings: 4096 * 32 });
  const headDim = headDimOf(f, common);
  const slidingWindow = f.intOrNull('sliding_window', null);
  if (slidingWindow === 0) throw new ConfigError(`${f.source}: "sliding_window" must be a positive integer or null, got 0`);
  const config: MixtralConfig = {
    family: 'mixtral',
    modelType: 'mixtral',
    ...common,
    // MixtralConfig's own defaults, where they differ from the common ones.
    rmsNormEps: f.positive('rms_norm_eps', 1e-5),
    rope: hasRopeTheta(f) ? common.rope : { ...common.rope, theta: 1e6 },
    // Mixtral's projections have no biases whatever the config says (transformers builds them bias=False).
    attentionBias: false,
    mlpBias: false,
    headDim,
    ...globalAttention(headDim, false),
    // MistralAttention: the window (when the config has one) applies to every layer.
    slidingWindow,
    numExperts: expertCount(f, 'num_local_experts', 'num_experts', 8),
    numExpertsPerTok: f.int('num_experts_per_tok', 2),
    moeIntermediateSize: common.intermediateSize,
    normTopkProb: true,
  };
  checkTopK(config, f.source);
  checkSilu(config.hiddenAct, f.source);
  return config;
}

/** vLLM / transformers Qwen3-MoE: MoE unless listed in mlp_only_layers, on every decoder_sparse_step-th layer. */
export function isQwen3MoeSparseLayer(c: Qwen3MoeConfig, layer: number): boolean {
  return !c.mlpOnlyLayers.includes(layer) && c.numExperts > 0 && (layer + 1) % c.decoderSparseStep === 0;
}

function globalAttention(headDim: number, bias: boolean): DenseAttentionFields {
  return {
    qkvBias: bias,
    oBias: bias,
    qkNorm: false,
    slidingWindow: null,
    slidingLayers: { kind: 'all' },
    attentionScale: headDim ** -0.5,
    attnLogitSoftcapping: null,
  };
}

/**
 * The shape checks this family's parallel layers make on every rank, made once before any starts:
 * heads and KV heads over tp (KV heads replicated when tp ≥ their count); without expert
 * parallelism each expert's intermediate size over tp; Qwen3-MoE's dense layers too; a layer per
 * pipeline stage. Any expert count works under EP (vLLM's expert map: E // ep each, the first
 * E % ep ranks one more; with fewer experts than ranks some hold none).
 */
export function checkMoeFamilyLayout(c: Qwen3MoeConfig | MixtralConfig, layout: { tp: number; pp?: number; ep: boolean }): void {
  const { tp, pp = 1, ep } = layout;
  divide(c.numAttentionHeads, tp, 'num_attention_heads');
  if (tp >= c.numKeyValueHeads) divide(tp, c.numKeyValueHeads, 'tp', 'num_key_value_heads');
  else divide(c.numKeyValueHeads, tp, 'num_key_value_heads');
  if (!ep) divide(c.moeIntermediateSize, tp, c.family === 'mixtral' ? 'intermediate_size (per expert)' : 'moe_intermediate_size');
  // Layer 0 is dense whenever decoder_sparse_step > 1.
  if (c.family === 'qwen3_moe' && (c.mlpOnlyLayers.length > 0 || c.decoderSparseStep > 1)) {
    divide(c.intermediateSize, tp, 'intermediate_size (the dense MLP layers)');
  }
  if (pp > c.numHiddenLayers) throw new ConfigError(`pp=${pp} is more than num_hidden_layers=${c.numHiddenLayers}: each pipeline stage needs at least one layer`);
}

/** The expert count under its name or its alias (transformers 5 writes Qwen3-MoE's as num_local_experts); both must agree. */
function expertCount(f: ConfigFields, key: string, alias: string, fallback: number): number {
  if (f.has(key) && f.has(alias) && f.int(key) !== f.int(alias)) {
    throw new ConfigError(`${f.source}: "${key}"=${f.int(key)} and "${alias}"=${f.int(alias)} disagree`);
  }
  return f.has(key) ? f.int(key) : f.int(alias, fallback);
}

function layerList(f: ConfigFields, key: string, numLayers: number): number[] {
  const v = f.raw(key);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x < numLayers)) {
    throw new ConfigError(`${f.source}: "${key}" must be a list of layer indices in [0, ${numLayers}), got ${JSON.stringify(v)}`);
  }
  return [...(v as number[])];
}

function hasRopeTheta(f: ConfigFields): boolean {
  if (f.has('rope_theta')) return true;
  const section = f.raw('rope_parameters') ?? f.raw('rope_scaling');
  return typeof section === 'object' && section !== null && (section as Record<string, unknown>)['rope_theta'] != null;
}

/** The experts' activation is SiLU (FusedMoE); transformers would take any ACT2FN name. */
function checkSilu(act: string, source: string): void {
  if (act !== 'silu') throw new ConfigError(`${source}: "hidden_act" "${act}" is not supported for the experts (only silu)`);
}

function checkTopK(c: SoftmaxMoEFields, source: string): void {
  if (c.numExpertsPerTok > c.numExperts) {
    throw new ConfigError(`${source}: num_experts_per_tok=${c.numExpertsPerTok} is more than the ${c.numExperts} experts`);
  }
}

/**
 * config.json of the dense families whose decoder is Llama's with options:
 * Llama, Mistral, Qwen2 / Qwen2.5, Qwen3, Phi-3 (one `LlamaConfig` with the
 * options set per model type), and Gemma 2 (its own config: sandwich norms,
 * soft-capping, GELU). Normalized with transformers' defaults for each model
 * type; options weft does not implement are refused here, naming the field.
 */
import { ConfigError } from './errors.js';
import { divide, divisors } from './shape.js';
import type { ConfigFields } from './config-fields.js';
import { type CommonModelConfig, headDimOf, parseCommon } from './common-config.js';

export type LlamaModelType = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'phi3';
export type AttentionLayerType = 'full_attention' | 'sliding_attention';

/**
 * Which layers attend through the sliding window, without a per-layer array
 * (a hostile num_hidden_layers must not allocate before it is checked):
 * every layer (Mistral, Phi-3), layers from `max_window_layers` on (Qwen2 /
 * Qwen3), even layers (Gemma 2), or the config's own `layer_types`.
 */
export type SlidingLayers =
  | { kind: 'all' }
  | { kind: 'from'; first: number }
  | { kind: 'even' }
  | { kind: 'listed'; layerTypes: readonly AttentionLayerType[] };

/** What the Llama-style attention of every dense family needs beyond the common sizes. */
export interface DenseAttentionFields {
  /** q/k/v projections carry biases (Llama / Gemma 2: `attention_bias`; Qwen2: always). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama / Gemma 2: `attention_bias`; Qwen2: never). */
  oBias: boolean;
  /** Qwen3: per-head RMSNorm of q and k (`q_norm`, `k_norm`) before rotary. */
  qkNorm: boolean;
  /** Tokens a sliding layer sees, itself included (HF's `sliding_window`); null: no layer slides. */
  slidingWindow: number | null;
  /** Which layers use `slidingWindow` (see `layerSlidingWindow`). */
  slidingLayers: SlidingLayers;
  /** Softmax scale: head_dim^-0.5, Gemma 2's query_pre_attn_scalar^-0.5. */
  attentionScale: number;
  /** Gemma 2: scores = cap · tanh(scores / cap); null: none. */
  attnLogitSoftcapping: number | null;
}

export interface LlamaConfig extends CommonModelConfig, DenseAttentionFields {
  family: 'llama';
  modelType: LlamaModelType;
}

export interface Gemma2Config extends CommonModelConfig, DenseAttentionFields {
  family: 'gemma2';
  modelType: 'gemma2';
  /** logits = cap · tanh(logits / cap); null: none. */
  finalLogitSoftcapping: number | null;
  queryPreAttnScalar: number;
}

/** Llama's attention: global, scaled by head_dim^-0.5, no soft-cap, no q/k norm, `bias` on q/k/v and o. */
export function globalAttentionFields(headDim: number, bias: boolean): DenseAttentionFields {
  return { qkvBias: bias, oBias: bias, qkNorm: false, slidingWindow: null, slidingLayers: { kind: 'all' }, attentionScale: headDim ** -0.5, attnLogitSoftcapping: null };
}

/** The window layer `layer` attends through, null for global attention. */
export function layerSlidingWindow(c: DenseAttentionFields, layer: number): number | null {
  if (c.slidingWindow === null) return null;
  const s = c.slidingLayers;
  switch (s.kind) {
    case 'all':
      return c.slidingWindow;
    case 'from':
      return layer >= s.first ? c.slidingWindow : null;
    case 'even':
      return layer % 2 === 0 ? c.slidingWindow : null;
    case 'listed':
      return s.layerTypes[layer] === 'sliding_attention' ? c.slidingWindow : null;
  }
}

const DEFAULT_MAX_POSITIONS: Record<LlamaModelType, number> = { llama: 2048, mistral: 4096 * 32, qwen2: 32768, qwen3: 32768, phi3: 4096 };

/** transformers' LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, Phi3Config. */
export function parseLlamaFamily(f: ConfigFields, modelType: LlamaModelType): LlamaConfig {
  const common = parseCommon(f, { maxPositionEmbeddings: DEFAULT_MAX_POSITIONS[modelType] });
  const headDim = headDimOf(f, common);
  const attentionBias = f.bool('attention_bias', false);
  const fields = globalAttentionFields(headDim, attentionBias);
  let mlpBias = common.mlpBias;
  switch (modelType) {
    case 'llama':
      break;
    case 'mistral':
      // Every layer slides when the config has a window (MistralAttention reads config.sliding_window).
      fields.slidingWindow = f.intOrNull('sliding_window', 4096);
      break;
    case 'qwen2':
    case 'qwen3':
      // Qwen2: q/k/v always biased, o never; Qwen3: attention_bias for all four. Neither has an MLP bias.
      if (modelType === 'qwen2') Object.assign(fields, { qkvBias: true, oBias: false });
      fields.qkNorm = modelType === 'qwen3';
      mlpBias = false;
      Object.assign(fields, qwenWindows(f, common.numHiddenLayers));
      break;
    case 'phi3':
      // Phi3Attention builds qkv_proj and o_proj without biases; the window (if any) applies to every layer.
      Object.assign(fields, { qkvBias: false, oBias: false });
      mlpBias = false;
      fields.slidingWindow = f.intOrNull('sliding_window', null);
      break;
  }
  if (fields.slidingWindow === 0) throw new ConfigError(`${f.source}: "sliding_window" must be a positive integer or null, got 0`);
  // The gated MLP computes these two (transformers' ACT2FN would take any): refuse the rest before a rank is built.
  if (common.hiddenAct !== 'silu' && common.hiddenAct !== 'gelu_pytorch_tanh') {
    throw new ConfigError(`${f.source}: "hidden_act" "${common.hiddenAct}" is not supported (silu, gelu_pytorch_tanh)`);
  }
  return { family: 'llama', modelType, ...common, mlpBias, attentionBias: fields.qkvBias || fields.oBias, headDim, ...fields };
}

/** transformers' Gemma2Config (vLLM's gemma2.py). */
export function parseGemma2(f: ConfigFields): Gemma2Config {
  const common = parseCommon(f, { maxPositionEmbeddings: 8192 });
  const headDim = f.int('head_dim', 256);
  const act = f.has('hidden_activation') ? f.str('hidden_activation') : f.str('hidden_act', 'gelu_pytorch_tanh');
  if (act !== 'gelu_pytorch_tanh') {
    throw new ConfigError(`${f.source}: Gemma 2 "hidden_activation" "${act}" is not supported (only gelu_pytorch_tanh)`);
  }
  const queryPreAttnScalar = f.positive('query_pre_attn_scalar', 256);
  const attentionBias = f.bool('attention_bias', false);
  const slidingWindow = f.intOrNull('sliding_window', 4096);
  if (slidingWindow === 0) throw new ConfigError(`${f.source}: "sliding_window" must be a positive integer or null, got 0`);
  return {
    family: 'gemma2',
    modelType: 'gemma2',
    ...common,
    headDim,
    hiddenAct: act,
    mlpBias: false,
    attentionBias,
    // Gemma2Config defaults to a tied head.
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
    qkvBias: attentionBias,
    oBias: attentionBias,
    qkNorm: false,
    slidingWindow,
    slidingLayers: listedLayers(f, common.numHiddenLayers) ?? { kind: 'even' },
    attentionScale: queryPreAttnScalar ** -0.5,
    attnLogitSoftcapping: softcap(f, 'attn_logit_softcapping', 50),
    finalLogitSoftcapping: softcap(f, 'final_logit_softcapping', 30),
    queryPreAttnScalar,
  };
}

/** Qwen2Config / Qwen3Config: the window only with use_sliding_window, on layers from max_window_layers on. */
function qwenWindows(f: ConfigFields, numLayers: number): Pick<DenseAttentionFields, 'slidingWindow' | 'slidingLayers'> {
  const use = f.bool('use_sliding_window', false);
  const window = use ? f.intOrNull('sliding_window', 4096) : null;
  const first = f.int('max_window_layers', 28, 0);
  return { slidingWindow: window, slidingLayers: listedLayers(f, numLayers) ?? { kind: 'from', first } };
}

/** The config's `layer_types`, checked: one known type per layer. */
function listedLayers(f: ConfigFields, numLayers: number): SlidingLayers | null {
  const v = f.raw('layer_types');
  if (v === undefined || v === null) return null;
  const known: readonly string[] = ['full_attention', 'sliding_attention'];
  if (!Array.isArray(v) || v.length !== numLayers || !v.every((t) => typeof t === 'string' && known.includes(t))) {
    const got = Array.isArray(v) ? `${v.length} entries: ${JSON.stringify(v.slice(0, 4))}${v.length > 4 ? '…' : ''}` : JSON.stringify(v);
    throw new ConfigError(`${f.source}: "layer_types" must list one of ${known.join(' / ')} for each of the ${numLayers} layers, got ${got}`);
  }
  return { kind: 'listed', layerTypes: [...(v as AttentionLayerType[])] };
}

function softcap(f: ConfigFields, key: string, fallback: number): number | null {
  const v = f.raw(key);
  if (v === null) return null;
  return f.positive(key, fallback);
}


/**
 * The shapes the parallel layers need of a dense family at `tp` × `pp`,
 * checked before any rank starts: query heads split over tp; KV heads split
 * over tp, or (tp ≥ KV heads) each replicated on tp / KV-heads ranks; the MLP
 * splits; each pipeline stage gets a layer. Errors name the numbers.
 */
export function checkDenseFamilyLayout(c: LlamaConfig | Gemma2Config, tp: number, pp: number): void {
  divide(c.numAttentionHeads, tp, 'num_attention_heads');
  const kv = c.numKeyValueHeads;
  if (tp < kv ? kv % tp !== 0 : tp % kv !== 0) {
    const fits = [...divisors(kv), ...[2, 3, 4, 8].map((m) => m * kv)].filter((t) => c.numAttentionHeads % t === 0);
    throw new ConfigError(
      `num_key_value_heads=${kv} can be neither split over tp=${tp} (it does not divide ${kv}) nor replicated on it (${tp} is not a multiple of ${kv}); tp that fit: ${[...new Set(fits)].sort((a, b) => a - b).join(', ')}`,
    );
  }
  divide(c.intermediateSize, tp, 'intermediate_size');
  if (pp > c.numHiddenLayers) throw new ConfigError(`pp=${pp} is more than num_hidden_layers=${c.numHiddenLayers}: each pipeline stage needs at least one layer`);
}

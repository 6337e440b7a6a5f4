/**
 * LlamaForCausalLM for one rank (Llama 2 / 3 / 3.x: GQA, llama3 rope scaling,
 * tied or untied head, attention/MLP biases): the shared decoder-only skeleton
 * of @weft/layers with Llama's attention and gated MLP in every layer.
 */
import type { ParallelState } from '@weft/comm';
import { DecoderOnlyLM, GatedMLP, type StackedParamMapping } from '@weft/layers';
import { LlamaAttention, type LlamaAttentionConfig } from './llama-attention.js';
import type { LlamaConfig } from './llama-config.js';

/** q/k/v and gate/up checkpoint tensors load into fused parameters (vLLM's stacked_params_mapping). */
export const LLAMA_STACKED_PARAMS: StackedParamMapping[] = [
  { param: '.qkv_proj', checkpoint: '.q_proj', shardId: 'q' },
  { param: '.qkv_proj', checkpoint: '.k_proj', shardId: 'k' },
  { param: '.qkv_proj', checkpoint: '.v_proj', shardId: 'v' },
  { param: '.gate_up_proj', checkpoint: '.gate_proj', shardId: 0 },
  { param: '.gate_up_proj', checkpoint: '.up_proj', shardId: 1 },
];

/** What the engine tells a rank beyond the config (RankArgs). */
export interface LlamaRankOptions {
  /** The engine's maxModelLen: the rotary table need not reach past it. */
  maxModelLen?: number;
}

/** The rank options the engine passes to `createModel`, checked (they cross a thread boundary untyped). */
export function llamaRankOptions(opts: Record<string, unknown>): LlamaRankOptions {
  const m = opts['maxModelLen'];
  return typeof m === 'number' && Number.isInteger(m) && m > 0 ? { maxModelLen: m } : {};
}

/** Layer `i`'s attention and gated MLP, as every Llama-like family builds them (Gemma 2 wraps them in its own norms). */
export function llamaLayer(config: LlamaAttentionConfig, state: ParallelState, i: number, prefix: string, opts: LlamaRankOptions = {}): { selfAttn: LlamaAttention; mlp: GatedMLP } {
  return {
    selfAttn: new LlamaAttention(`${prefix}.self_attn`, config, state.tp, i, opts.maxModelLen),
    mlp: new GatedMLP({
      prefix: `${prefix}.mlp`,
      hiddenSize: config.hiddenSize,
      intermediateSize: config.intermediateSize,
      bias: config.mlpBias,
      hiddenAct: config.hiddenAct,
      tp: state.tp,
    }),
  };
}

/**
 * Also the model of every family that is Llama's decoder with options
 * (vLLM's qwen2.py, qwen3.py, phi3.py subclass it the same way): biases,
 * q/k norm, per-layer windows come from the config; `stacked` says how the
 * checkpoint's tensors map onto the fused qkv and gate|up parameters.
 */
export class LlamaForCausalLM extends DecoderOnlyLM {
  constructor(config: LlamaConfig, state: ParallelState, stacked: StackedParamMapping[] = LLAMA_STACKED_PARAMS, opts: LlamaRankOptions = {}) {
    super(
      config,
      state,
      (i, prefix) => llamaLayer(config, state, i, prefix, opts),
      stacked,
    );
  }
}

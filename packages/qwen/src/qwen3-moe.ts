/**
 * Qwen3MoeForCausalLM for one rank (vLLM's models/qwen3_moe.py): Qwen3's
 * attention (per-head q_norm / k_norm before rotary) in every layer; a sparse
 * MoE block (softmax router, top-k, renormalised when norm_topk_prob, no
 * shared expert) on every decoder_sparse_step-th layer not in mlp_only_layers,
 * a dense gated MLP of intermediate_size on the others.
 */
import type { ParallelState } from '@weft/comm';
import { isQwen3MoeSparseLayer, type Qwen3MoeConfig } from '@weft/core';
import { DecoderOnlyLM, FusedMoE, fusedMoEGroups, GatedMLP, type DispatchMethod } from '@weft/layers';
import { LlamaAttention, LLAMA_STACKED_PARAMS } from '@weft/llama';

export interface Qwen3MoeOptions {
  /** Token exchange under expert parallelism (default 'allgather'). */
  dispatch?: DispatchMethod;
}

export class Qwen3MoeForCausalLM extends DecoderOnlyLM {
  /** Expert parallelism spans the DP replicas: they must step together. */
  readonly needsDpLockstep: boolean;

  constructor(config: Qwen3MoeConfig, state: ParallelState, opts: Qwen3MoeOptions = {}) {
    const { tp, ep } = fusedMoEGroups(state);
    super(
      config,
      state,
      (i, prefix) => ({
        selfAttn: new LlamaAttention(`${prefix}.self_attn`, config, tp, i),
        mlp: isQwen3MoeSparseLayer(config, i)
          ? new FusedMoE({
              prefix: `${prefix}.mlp`,
              hiddenSize: config.hiddenSize,
              intermediateSize: config.moeIntermediateSize,
              numExperts: config.numExperts,
              // Qwen3MoeSparseMoeBlock: softmax (fp32) over all experts, top-k, divided by their sum if norm_topk_prob.
              routing: { topK: config.numExpertsPerTok, scoring: 'softmax', renormalize: config.normTopkProb },
              tp,
              ep,
              dispatch: opts.dispatch,
            })
          : new GatedMLP({
              prefix: `${prefix}.mlp`,
              hiddenSize: config.hiddenSize,
              intermediateSize: config.intermediateSize,
              hiddenAct: config.hiddenAct,
              tp,
            }),
      }),
      // q/k/v into qkv_proj; gate/up into gate_up_proj, the dense MLP's and every expert's alike.
      LLAMA_STACKED_PARAMS,
    );
    this.needsDpLockstep = ep !== null && ep.worldSize > 1;
  }
}

/**
 * MixtralForCausalLM for one rank (vLLM's models/mixtral.py): Mistral's
 * attention (Llama's, with the optional sliding window) and a sparse MoE
 * block in every layer: softmax router, top-k renormalised, experts
 * `block_sparse_moe.experts.N.{w1,w3,w2}` (gate, up, down), no shared expert.
 */
import type { ParallelState } from '@weft/comm';
import type { MixtralConfig } from '@weft/core';
import { DecoderOnlyLM, expertParamsMapping, FusedMoE, fusedMoEGroups, type DispatchMethod, type StackedParamMapping } from '@weft/layers';
import { LlamaAttention, LLAMA_STACKED_PARAMS } from '@weft/llama';

export interface MixtralOptions {
  /** Token exchange under expert parallelism (default 'allgather'). */
  dispatch?: DispatchMethod;
}

/** Llama's q/k/v fusion, then w1|w3 into each expert's gate_up_proj and w2 as its down_proj. */
export const MIXTRAL_STACKED_PARAMS: StackedParamMapping[] = [
  ...LLAMA_STACKED_PARAMS.filter((m) => m.param === '.qkv_proj'),
  ...expertParamsMapping({ gate: 'w1', up: 'w3', down: 'w2' }),
];

export class MixtralForCausalLM extends DecoderOnlyLM {
  /** Expert parallelism spans the DP replicas: they must step together. */
  readonly needsDpLockstep: boolean;

  constructor(config: MixtralConfig, state: ParallelState, opts: MixtralOptions = {}) {
    const { tp, ep } = fusedMoEGroups(state);
    super(
      config,
      state,
      (i, prefix) => ({
        selfAttn: new LlamaAttention(`${prefix}.self_attn`, config, tp, i),
        mlp: new FusedMoE({
          prefix: `${prefix}.block_sparse_moe`,
          hiddenSize: config.hiddenSize,
          intermediateSize: config.moeIntermediateSize,
          numExperts: config.numExperts,
          // MixtralSparseMoeBlock: softmax (fp32) over all experts, top-k, weights divided by their sum.
          routing: { topK: config.numExpertsPerTok, scoring: 'softmax', renormalize: config.normTopkProb },
          tp,
          ep,
          dispatch: opts.dispatch,
        }),
      }),
      MIXTRAL_STACKED_PARAMS,
    );
    this.needsDpLockstep = ep !== null && ep.worldSize > 1;
  }
}

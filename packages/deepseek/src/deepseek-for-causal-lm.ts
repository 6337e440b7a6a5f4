/**
 * DeepseekV2ForCausalLM / DeepseekV3ForCausalLM for one rank: MLA attention in
 * every layer; a dense gated MLP for the first `first_k_dense_replace` layers
 * (and those off `moe_layer_freq`), FusedMoE with shared experts elsewhere.
 */
import type { ParallelState } from '@weft/comm';
import type { DeepseekConfig } from '@weft/core';
import {
  DecoderOnlyLM,
  FUSED_MOE_STACKED_PARAMS,
  FusedMoE,
  fusedMoEGroups,
  GatedMLP,
  type DispatchMethod,
  type StackedParamMapping,
} from '@weft/layers';
import { DeepseekMLA, type MlaCacheForm } from './deepseek-mla.js';

export interface DeepseekOptions {
  /** Token exchange under expert parallelism (default 'allgather'). */
  dispatch?: DispatchMethod;
  /** MLA KV cache: the compressed latent (default) or full per-head K/V. */
  kvCache?: MlaCacheForm;
}

export const DEEPSEEK_STACKED_PARAMS: StackedParamMapping[] = [
  ...FUSED_MOE_STACKED_PARAMS.map((m) => ({ ...m, param: `.${m.param}`, checkpoint: `.${m.checkpoint}` })),
];

/** vLLM / HF: MoE when routed experts exist, past the dense prefix, on the layer frequency. */
export function isMoeLayer(c: DeepseekConfig, layer: number): boolean {
  return c.nRoutedExperts > 0 && layer >= c.firstKDenseReplace && layer % c.moeLayerFreq === 0;
}

export class DeepseekForCausalLM extends DecoderOnlyLM {
  /** Expert parallelism spans the DP replicas: they must step together. */
  readonly needsDpLockstep: boolean;

  constructor(config: DeepseekConfig, state: ParallelState, opts: DeepseekOptions = {}) {
    const { tp, ep } = fusedMoEGroups(state);
    super(
      config,
      state,
      (i, prefix) => ({
        selfAttn: new DeepseekMLA(`${prefix}.self_attn`, config, tp, opts.kvCache),
        mlp: isMoeLayer(config, i)
          ? new FusedMoE({
              prefix: `${prefix}.mlp`,
              hiddenSize: config.hiddenSize,
              intermediateSize: config.moeIntermediateSize,
              numExperts: config.nRoutedExperts,
              routing: {
                topK: config.numExpertsPerTok,
                scoring: config.scoringFunc,
                nGroup: config.nGroup,
                topkGroup: config.topkGroup,
                // Transformers' V2 never renormalises (it ignores norm_topk_prob); V3 does when asked.
                renormalize: config.modelType === 'deepseek_v3' && config.normTopkProb,
                routedScalingFactor: config.routedScalingFactor,
                method: config.topkMethod,
              },
              correctionBias: config.hasCorrectionBias,
              numSharedExperts: config.nSharedExperts,
              tp,
              ep,
              dispatch: opts.dispatch,
            })
          : new GatedMLP({
              prefix: `${prefix}.mlp`,
              hiddenSize: config.hiddenSize,
              intermediateSize: config.intermediateSize,
              bias: false,
              hiddenAct: config.hiddenAct,
              tp,
            }),
      }),
      DEEPSEEK_STACKED_PARAMS,
    );
    this.needsDpLockstep = ep !== null && ep.worldSize > 1;
  }
}

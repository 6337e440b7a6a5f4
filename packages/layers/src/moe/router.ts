/**
 * MoE routing: which experts each token goes to and with what weight.
 * Hugging Face transformers is the oracle (vLLM's `grouped_topk` / `fused_topk`
 * differ in corners, noted below):
 *
 * - DeepSeek V3 `noaux_tc` (`DeepseekV3MoE.route_tokens_to_experts`):
 *   s = sigmoid(logits); biased = s + e_score_correction_bias (chooses only);
 *   group score = sum of the top-2 biased scores of the group; keep the
 *   `topk_group` best groups, others masked to **0.0** (vLLM masks to −inf,
 *   which differs only when a kept biased score is negative); top-k over the
 *   masked biased scores; weights = the **unbiased** s at those ids (also for
 *   an id from a masked group); if norm_topk_prob: w / (Σw + 1e-20); then
 *   always × routed_scaling_factor.
 * - DeepSeek V2 (`DeepseekV2Moe.route_tokens_to_experts`): s = softmax(logits);
 *   `greedy`: plain top-k; `group_limited_greedy`: group score = group max,
 *   keep `topk_group` groups, mask others to 0.0, top-k over the masked scores
 *   and the weights are those **masked** values; then always ×
 *   routed_scaling_factor. HF V2 never renormalises (it ignores
 *   norm_topk_prob; DeepSeek's own remote code renormalised *instead of*
 *   scaling): pass `renormalize: false` to match HF.
 *
 * - Mixtral (`MixtralTopKRouter`) and Qwen3-MoE (`Qwen3MoeTopKRouter`):
 *   s = softmax(logits) in fp32; plain top-k; w / Σw (Mixtral always, Qwen3-MoE
 *   when norm_topk_prob); no scaling. HF divides without the 1e-20, which
 *   cannot change an fp32 sum of softmax scores (≥ 1/E).
 *
 * The general rule (vLLM's): with a correction bias, experts are chosen by
 * biased scores, groups scored by their top-2, and weighed by unbiased scores,
 * whatever the method; 'greedy' ignores n_group.
 *
 * Ties go to the lowest expert (and group) index, as tf.topk does on the cpu
 * and wasm backends (torch.topk with sorted=False leaves tie order
 * unspecified). Ids come out in descending order of the choice score.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, divide } from '@weft/core';

export type RoutingMethod = 'greedy' | 'group_limited_greedy' | 'noaux_tc';

export interface RouterConfig {
  /** num_experts_per_tok */
  topK: number;
  /** softmax (V2, Mixtral, Qwen) or sigmoid (V3). */
  scoring: 'softmax' | 'sigmoid';
  /** `e_score_correction_bias` [E]: added to the scores to choose, never to weigh. */
  correctionBias?: tf.Tensor1D | null;
  /** n_group (default 1). */
  nGroup?: number;
  /** topk_group: groups kept per token (default nGroup). */
  topkGroup?: number;
  /** Divide the chosen weights by their sum (+1e-20, as HF V3). */
  renormalize: boolean;
  /** Multiplies the final weights (default 1). */
  routedScalingFactor?: number;
  /**
   * topk_method. Default: 'noaux_tc' with a correction bias, else
   * 'group_limited_greedy' when nGroup > 1, else 'greedy'.
   */
  method?: RoutingMethod;
}

/** A FusedMoE's router settings: the config without the bias tensor (the layer holds that as a parameter). */
export type MoERouting = Omit<RouterConfig, 'correctionBias'>;

/** Host-side routing of N tokens: row-major [N, topK]. */
export interface HostRouting {
  ids: Int32Array;
  weights: Float32Array;
  topK: number;
}

export interface Routing {
  /** [T, topK] fp32 */
  weights: tf.Tensor2D;
  /** [T, topK] int32, global expert ids */
  ids: tf.Tensor2D;
}

/** The method `cfg` resolves to (see RouterConfig.method); `correctionBias` only matters by its presence. */
export function routingMethod(cfg: { method?: RoutingMethod; nGroup?: number; correctionBias?: unknown }): RoutingMethod {
  if (cfg.method) return cfg.method;
  if (cfg.correctionBias) return 'noaux_tc';
  return (cfg.nGroup ?? 1) > 1 ? 'group_limited_greedy' : 'greedy';
}

/** Check a routing configuration against the expert count; throws a ConfigError naming the sizes. */
export function checkRouterConfig(cfg: RouterConfig, numExperts: number): void {
  if (!Number.isInteger(cfg.topK) || cfg.topK < 1 || cfg.topK > numExperts) {
    throw new ConfigError(`num_experts_per_tok=${cfg.topK} must be between 1 and n_routed_experts=${numExperts}`);
  }
  if (cfg.correctionBias && (cfg.correctionBias.rank !== 1 || cfg.correctionBias.shape[0] !== numExperts)) {
    throw new ConfigError(`e_score_correction_bias has shape [${cfg.correctionBias.shape.join(', ')}], expected [${numExperts}]`);
  }
  const method = routingMethod(cfg);
  if (method === 'greedy') return;
  const nGroup = cfg.nGroup ?? 1;
  const perGroup = divide(numExperts, nGroup, 'n_routed_experts', 'n_group');
  const topkGroup = cfg.topkGroup ?? nGroup;
  if (!Number.isInteger(topkGroup) || topkGroup < 1 || topkGroup > nGroup) {
    throw new ConfigError(`topk_group=${topkGroup} must be between 1 and n_group=${nGroup}`);
  }
  if (scoresGroupsByTopTwo(cfg) && perGroup < 2) {
    throw new ConfigError(
      `with a correction bias a group is scored by its top-2 experts: n_routed_experts/n_group = ${numExperts}/${nGroup} = ${perGroup} is less than 2`,
    );
  }
}

/** HF V3 (whose bias buffer always exists) and vLLM with a bias: top-2 sum; otherwise the group max. */
function scoresGroupsByTopTwo(cfg: RouterConfig): boolean {
  return routingMethod(cfg) === 'noaux_tc' || !!cfg.correctionBias;
}

/** Route `routerLogits` [T, E] (fp32). Synchronous and tidy: only the result survives. */
export function selectExperts(routerLogits: tf.Tensor2D, cfg: RouterConfig): Routing {
  const [T, E] = routerLogits.shape;
  checkRouterConfig(cfg, E);
  const method = routingMethod(cfg);
  const bias = cfg.correctionBias ?? null;
  const nGroup = cfg.nGroup ?? 1;
  const topkGroup = cfg.topkGroup ?? nGroup;
  // V2 'greedy' ignores n_group even when the config sets it.
  const grouped = method !== 'greedy' && topkGroup < nGroup;
  // With a bias (and for V3, whose bias buffer always exists) the weights are the unbiased scores gathered at
  // the chosen ids; otherwise they are the values top-k chose (HF V2: the masked scores).
  const gatherWeights = bias !== null || method === 'noaux_tc';
  // Some kernels cannot take empty inputs; an EP rank may have no tokens.
  if (T === 0) return { weights: tf.zeros([0, cfg.topK]), ids: tf.zeros([0, cfg.topK], 'int32') };
  return tf.tidy(() => {
    const logits = routerLogits.dtype === 'float32' ? routerLogits : tf.cast(routerLogits, 'float32');
    const scores: tf.Tensor2D = cfg.scoring === 'softmax' ? tf.softmax(logits, -1) : tf.sigmoid(logits);
    let choice: tf.Tensor2D = bias ? tf.add(scores, bias) : scores;
    if (grouped) {
      const perGroup = tf.reshape(choice, [T * nGroup, E / nGroup]);
      const groupScores = scoresGroupsByTopTwo(cfg) ? tf.sum(tf.topk(perGroup, 2).values, -1) : tf.max(perGroup, -1);
      choice = maskToGroups(choice, tf.reshape(groupScores, [T, nGroup]), nGroup, topkGroup);
    }
    const top = tf.topk(choice, cfg.topK);
    const ids = top.indices as tf.Tensor2D;
    let weights = (gatherWeights ? takeAlongRows(scores, ids) : top.values) as tf.Tensor2D;
    if (cfg.renormalize) weights = tf.div(weights, tf.add(tf.sum(weights, -1, true), 1e-20));
    // HF always multiplies; ×1 is exact, so skipping it changes nothing.
    if (cfg.routedScalingFactor !== undefined && cfg.routedScalingFactor !== 1) weights = tf.mul(weights, cfg.routedScalingFactor);
    return { weights, ids };
  });
}

/**
 * Scores of experts outside each token's `topkGroup` best groups set to 0.0 (HF's masked_fill).
 * Only 2-D ops: tfjs-backend-webgpu 4.22 miscompiles 3-D int32 transposes, which reductions over
 * a middle axis make (deepseek-v3 logits were wrong on the H200).
 */
function maskToGroups(scores: tf.Tensor2D, groupScores: tf.Tensor2D, nGroup: number, topkGroup: number): tf.Tensor2D {
  const [T, E] = scores.shape;
  const keep = tf.topk(groupScores, topkGroup).indices; // [T, topkGroup]
  const groupIds = tf.reshape(tf.range(0, nGroup, 1, 'int32'), [1, nGroup]);
  let kept: tf.Tensor2D = tf.zeros([T, nGroup]);
  for (let j = 0; j < topkGroup; j++) {
    kept = tf.add(kept, tf.cast(tf.equal(tf.slice(keep, [0, j], [-1, 1]), groupIds), 'float32'));
  }
  // [T, nGroup] × [nGroup, E] group membership → which experts are in a kept group.
  const perGroup = E / nGroup;
  const membership = tf.tensor2d(Array.from({ length: nGroup * E }, (_, i) => (Math.floor((i % E) / perGroup) === Math.floor(i / E) ? 1 : 0)), [nGroup, E]);
  const expertMask = tf.greater(tf.matMul(kept, membership), 0.5);
  return tf.where(expertMask, scores, tf.zerosLike(scores));
}

/** out[t, k] = x[t, ids[t, k]], through a flat gather: tf.gather with batchDims returns garbage on wasm (tfjs 4.22). */
function takeAlongRows(x: tf.Tensor2D, ids: tf.Tensor2D): tf.Tensor2D {
  const [T, E] = x.shape;
  const rowStart = tf.mul(tf.range(0, T, 1, 'int32'), tf.scalar(E, 'int32'));
  const flat = tf.add(ids, tf.reshape(rowStart, [T, 1]));
  return tf.reshape(tf.gather(tf.reshape(x, [T * E]), tf.reshape(flat, [-1])), ids.shape);
}

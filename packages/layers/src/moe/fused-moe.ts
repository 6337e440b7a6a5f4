/**
 * vLLM's FusedMoE: router gate, routed experts and optional shared experts of
 * one MoE block, in one of two modes (vLLM's --enable-expert-parallel):
 *
 * - without EP: every expert is tensor-parallel over TP; routed and shared
 *   partial outputs are summed by ONE TP all-reduce at the end.
 * - with EP: whole experts live on the ranks of the EP group (DP×TP ranks of a
 *   stage) per the expert map. TP peers hold the same tokens, so each takes an
 *   even share of them to dispatch (no token is sent twice); a rank's routed
 *   output covers its share only, is placed among zero rows, joins the shared
 *   experts' TP partial, and the same single TP all-reduce completes both.
 *   With TP 1 no all-reduce is needed.
 *
 * Parameter names follow the Hugging Face checkpoint (`mlp.gate.weight`,
 * `mlp.gate.e_score_correction_bias`, `mlp.experts.N.*`, `mlp.shared_experts.*`),
 * with gate_proj/up_proj stacked into gate_up_proj (FUSED_MOE_STACKED_PARAMS).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator, ParallelState } from '@weft/comm';
import { ConfigError, WeftError } from '@weft/core';
import { ReplicatedLinear } from '../linear/replicated-linear.js';
import { Parameter } from '../parameter.js';
import { whole, type PlanBuilder } from '../plan/builder.js';
import type { ActView } from '../plan/ops.js';
import { scoped } from '../scope.js';
import type { StackedParamMapping } from '../weight-loading.js';
import { dispatchToExperts, type DispatchMethod } from './dispatch.js';
import { determineExpertMap, expertOwners, type ExpertMap, type ExpertPlacement } from './expert-map.js';
import { RoutedExperts } from './routed-experts.js';
import { checkRouterConfig, routingMethod, selectExperts, type HostRouting, type MoERouting, type RouterConfig } from './router.js';
import { SharedExperts } from './shared-experts.js';

/** Checkpoint gate_proj / up_proj → the fused gate_up_proj parameters (routed and shared experts). */
export const FUSED_MOE_STACKED_PARAMS: readonly StackedParamMapping[] = [
  { param: 'gate_up_proj', checkpoint: 'gate_proj', shardId: 0 },
  { param: 'gate_up_proj', checkpoint: 'up_proj', shardId: 1 },
];

/** Routing of a FusedMoE: the router's configuration, the bias being the layer's own parameter. */

export interface FusedMoEOptions {
  /** The MoE block, e.g. `model.layers.1.mlp`. */
  prefix: string;
  hiddenSize: number;
  /** moe_intermediate_size */
  intermediateSize: number;
  /** n_routed_experts */
  numExperts: number;
  routing: MoERouting;
  /** Hold `${prefix}.gate.e_score_correction_bias` [E] and route with it (DeepSeek V3). */
  correctionBias?: boolean;
  /** Hold the router gate `${prefix}.gate.weight` [E, H] (default true); without it forward needs the logits. */
  gate?: boolean;
  /** n_shared_experts; 0 or absent: none. */
  numSharedExperts?: number;
  tp: GroupCoordinator;
  /** The EP group when expert parallelism is on; absent or null: experts TP-split. */
  ep?: GroupCoordinator | null;
  /** Token exchange under EP (default 'allgather'). */
  dispatch?: DispatchMethod;
  /** Expert placement under EP (default 'linear'). */
  placement?: ExpertPlacement;
  /** End with the TP all-reduce (default true); false leaves partial sums for a later fused reduction. */
  reduceResults?: boolean;
}

/** The groups FusedMoE needs from a rank's parallel state: EP only when the job enabled it. */
export function fusedMoEGroups(state: ParallelState): { tp: GroupCoordinator; ep: GroupCoordinator | null } {
  return { tp: state.tp, ep: state.config.ep ? state.ep : null };
}

export class FusedMoE {
  readonly prefix: string;
  readonly hiddenSize: number;
  readonly numExperts: number;
  readonly topK: number;
  readonly tp: GroupCoordinator;
  readonly ep: GroupCoordinator | null;
  readonly dispatch: DispatchMethod;
  readonly reduceResults: boolean;
  readonly gate: ReplicatedLinear | null;
  readonly correctionBias: Parameter | null;
  readonly experts: RoutedExperts;
  readonly sharedExperts: SharedExperts | null;
  /** With the method resolved (a correction bias means noaux_tc unless told otherwise). */
  readonly routing: MoERouting;
  /** Global expert id → EP rank (all zeros without EP). */
  private readonly owners: Int32Array;

  constructor(opts: FusedMoEOptions) {
    const { prefix, hiddenSize: H, numExperts: E, tp } = opts;
    const ep = opts.ep ?? null;
    if (ep) {
      const outside = tp.ranks.filter((r) => !ep.ranks.includes(r));
      if (outside.length > 0) {
        throw new ConfigError(`${prefix}: TP group ${tp.uniqueName} [${tp.ranks.join(', ')}] is not inside EP group ${ep.uniqueName} [${ep.ranks.join(', ')}]`);
      }
    }
    const routing: MoERouting = { ...opts.routing, method: routingMethod({ ...opts.routing, correctionBias: opts.correctionBias }) };
    checkRouterConfig(routing, E);
    const placement = opts.placement ?? 'linear';
    const expertMap: ExpertMap = ep ? determineExpertMap(ep.worldSize, ep.rankInGroup, E, placement) : determineExpertMap(1, 0, E);
    this.prefix = prefix;
    this.hiddenSize = H;
    this.numExperts = E;
    this.topK = opts.routing.topK;
    this.tp = tp;
    this.ep = ep;
    this.dispatch = opts.dispatch ?? 'allgather';
    this.reduceResults = opts.reduceResults ?? true;
    this.routing = routing;
    this.owners = ep ? expertOwners(ep.worldSize, E, placement) : new Int32Array(E);
    this.gate = opts.gate === false ? null : new ReplicatedLinear({ prefix: `${prefix}.gate`, inputSize: H, outputSize: E });
    this.correctionBias = opts.correctionBias ? new Parameter(`${prefix}.gate.e_score_correction_bias`, [E]) : null;
    this.experts = new RoutedExperts({
      prefix,
      hiddenSize: H,
      intermediateSize: opts.intermediateSize,
      numExperts: E,
      expertMap,
      tpSize: ep ? 1 : tp.worldSize,
      tpRank: ep ? 0 : tp.rankInGroup,
    });
    const nShared = opts.numSharedExperts ?? 0;
    this.sharedExperts =
      nShared > 0 ? new SharedExperts({ prefix: `${prefix}.shared_experts`, hiddenSize: H, intermediateSize: opts.intermediateSize * nShared, tp }) : null;
  }

  get expertMap(): ExpertMap {
    return this.experts.expertMap;
  }

  parameters(): Parameter[] {
    return [
      ...(this.gate?.parameters() ?? []),
      ...(this.correctionBias ? [this.correctionBias] : []),
      ...this.experts.parameters(),
      ...(this.sharedExperts?.parameters() ?? []),
    ];
  }

  /** Checkpoint tensors of experts held by other EP ranks: pass as the loader's `elsewhere`. */
  isElsewhere(name: string): boolean {
    return this.experts.isElsewhere(name);
  }

  /**
   * `hidden` [T, H] → [T, H]. `routerLogits` [T, E] replace the gate when given. Every rank of the TP
   * group (and, with EP, of the EP group) must call it; TP peers with the same hidden states, EP ranks
   * with any token count, 0 included.
   */
  async forward(hidden: tf.Tensor2D, routerLogits?: tf.Tensor2D): Promise<tf.Tensor2D> {
    return scoped(
      async () => {
        const [T, H] = hidden.shape;
        if (H !== this.hiddenSize) throw new WeftError(`${this.prefix}: hidden states [${T}, ${H}], expected hidden size ${this.hiddenSize}`);
        if (routerLogits && (routerLogits.shape[0] !== T || routerLogits.shape[1] !== this.numExperts)) {
          throw new WeftError(`${this.prefix}: router logits [${routerLogits.shape.join(', ')}], expected [${T}, ${this.numExperts}]`);
        }
        // With EP each TP peer dispatches an even share of the (shared) tokens; without it, all of them.
        const [start, len] = this.ep ? tokenShare(T, this.tp.worldSize, this.tp.rankInGroup) : [0, T];
        const x = len === T ? hidden : (tf.slice(hidden, [start, 0], [len, H]) as tf.Tensor2D);
        const routing = await this.route(x, routerLogits && len !== T ? (tf.slice(routerLogits, [start, 0], [len, -1]) as tf.Tensor2D) : routerLogits);
        const compute = (xs: tf.Tensor2D, r: HostRouting) => this.experts.compute(xs, r);
        let out = this.ep ? await dispatchToExperts(this.dispatch, this.ep, x, routing, compute, this.owners) : compute(x, routing);
        if (len !== T) out = tf.pad(out, [[start, T - start - len], [0, 0]]);
        if (this.sharedExperts) out = tf.add(out, await this.sharedExperts.forward(hidden));
        if (this.reduceResults && this.tp.worldSize > 1) out = (await this.tp.allReduce(out)) as tf.Tensor2D;
        return out;
      },
      (out) => out,
    );
  }

  /** Why `record` cannot run on this rank's layout, or null. */
  planUnsupported(): string | null {
    if (!this.gate) return `${this.prefix}: FusedMoE without a gate (router logits from outside) has no device plan`;
    return null;
  }

  /**
   * Records the block: the replicated gate → router logits, the `moe` op over this rank's experts (all of
   * them TP-split, or under EP its whole ones), the shared experts' TP partial added, then the one TP
   * all-reduce. Under EP within TP (DP 1: the EP group is the TP group) every rank runs its experts on all
   * the step's tokens and the all-reduce sums the ranks' parts: the same sum as the tfjs path's token
   * exchange, added in another order (fp32 rounding apart). Under EP across DP replicas the op exchanges
   * this TP rank's share of the tokens as `forward` does (`MoeExchange`, a plan boundary).
   */
  record(b: PlanBuilder, x: ActView): ActView {
    const why = this.planUnsupported();
    if (why) throw new ConfigError(`device plan: ${why}`);
    if (x.width !== this.hiddenSize) throw new ConfigError(`${this.prefix}: plan view of width ${x.width}, hidden size ${this.hiddenSize}`);
    const logits = whole(b.scratch('moe.logits', this.numExperts));
    this.gate!.record(b, x, logits);
    const out = whole(b.scratch('moe.out', this.hiddenSize));
    b.op({
      kind: 'moe',
      x,
      logits,
      out,
      routing: this.routing,
      correctionBias: this.correctionBias,
      numExperts: this.numExperts,
      experts: this.experts.planExperts(),
      exchange: this.ep && this.ep.worldSize > this.tp.worldSize ? { ep: this.ep, tp: this.tp, dispatch: this.dispatch, owners: this.owners } : null,
    });
    if (this.sharedExperts) b.op({ kind: 'add', a: out, b: this.sharedExperts.record(b, x, 'moe.shared'), out });
    if (this.reduceResults) b.allReduce(out, this.tp);
    return out;
  }

  /** Router over `x`'s tokens, read back to the host (the expert loop needs ids on the host anyway). */
  private async route(x: tf.Tensor2D, routerLogits: tf.Tensor2D | undefined): Promise<HostRouting> {
    let logits = routerLogits;
    if (!logits) {
      if (!this.gate) throw new WeftError(`${this.prefix}: FusedMoE was built without a gate (gate: false); pass the router logits to forward`);
      logits = this.gate.forward(x);
    }
    const { weights, ids } = selectExperts(logits, { ...this.routing, correctionBias: (this.correctionBias?.tensor as tf.Tensor1D | undefined) ?? null });
    return { ids: (await ids.data()) as Int32Array, weights: (await weights.data()) as Float32Array, topK: this.topK };
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}

/** Rows [start, start + len) of T that TP rank `rank` of `size` dispatches: T // size each, the first T % size one more. */
export function tokenShare(T: number, size: number, rank: number): [number, number] {
  const base = Math.floor(T / size);
  const rem = T % size;
  return [rank * base + Math.min(rank, rem), base + (rank < rem ? 1 : 0)];
}

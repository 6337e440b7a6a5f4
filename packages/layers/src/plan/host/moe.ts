/**
 * The host executor's `moe` op (plan/ops.ts `MoeOp`): the router in plain
 * fp32 loops that round as tfjs's cpu kernels do (so routing ties and
 * near-ties fall as `moe/router.ts` decides them), then each local expert's
 * tokens through @weft/cpu-kernels' linear (the weight's format: fp32, bf16,
 * Q8_0, Q4_0) and gated act, and the weighted sum in ascending expert id, as
 * `RoutedExperts.compute` adds them. Under EP across DP replicas the rows
 * travel through `moe/dispatch.ts`'s exchange (the tfjs path's own code, so
 * the same sums in the same order) before and after.
 */
import { WeftError } from '@weft/core';
import type { HostMatrix, PlanKernels } from '@weft/cpu-kernels';
import type { HostRouting } from '../../moe/router.js';
import * as tf from '@tensorflow/tfjs-core';
import { dispatchToExperts } from '../../moe/dispatch.js';
import { tokenShare } from '../../moe/fused-moe.js';
import { routingMethod } from '../../moe/router.js';
import type { ActView, MoeOp } from '../ops.js';
import type { HostBuffers } from './mla.js';

const f = Math.fround;

/** One of the op's experts as the executor holds it: its weights in the kernels' form (uploaded once). */
export interface HostExpert {
  readonly id: number;
  readonly gateUp: HostMatrix;
  readonly down: HostMatrix;
}

/** Descending by value, ties to the lower index (tf.topk on the cpu backends). */
function topIndices(v: Float32Array, k: number, into: Int32Array, at: number): void {
  const idx = Array.from(v.keys()).sort((a, b) => v[b]! - v[a]! || a - b);
  for (let j = 0; j < k; j++) into[at + j] = idx[j]!;
}

/**
 * Route `logits` `[T, E]` as `selectExperts` does (op.routing, the method resolved; `bias` the correction
 * bias values or null): `[T, topK]` global ids and weights.
 */
export function routeHost(op: Pick<MoeOp, 'routing' | 'numExperts'>, logits: Float32Array, T: number, bias: Float32Array | null): HostRouting {
  const E = op.numExperts;
  const cfg = op.routing;
  const K = cfg.topK;
  const method = routingMethod({ ...cfg, correctionBias: bias });
  const nGroup = cfg.nGroup ?? 1;
  const topkGroup = cfg.topkGroup ?? nGroup;
  const grouped = method !== 'greedy' && topkGroup < nGroup;
  const topTwo = method === 'noaux_tc' || bias !== null;
  const gatherWeights = topTwo;
  const scale = cfg.routedScalingFactor !== undefined && cfg.routedScalingFactor !== 1 ? f(cfg.routedScalingFactor) : null;
  const per = E / nGroup;
  const ids = new Int32Array(T * K);
  const weights = new Float32Array(T * K);
  const scores = new Float32Array(E);
  const choice = new Float32Array(E);
  const groupScore = new Float32Array(nGroup);
  const keptGroups = new Int32Array(topkGroup);
  const chosen = new Int32Array(K);
  for (let t = 0; t < T; t++) {
    const row = logits.subarray(t * E, (t + 1) * E);
    if (cfg.scoring === 'softmax') {
      let mx = -Infinity;
      for (let e = 0; e < E; e++) mx = Math.max(mx, row[e]!);
      let sum = 0;
      for (let e = 0; e < E; e++) sum += scores[e] = f(Math.exp(f(row[e]! - mx)));
      const s = f(sum);
      for (let e = 0; e < E; e++) scores[e] = f(scores[e]! / s);
    } else {
      for (let e = 0; e < E; e++) scores[e] = f(1 / f(1 + f(Math.exp(-row[e]!))));
    }
    for (let e = 0; e < E; e++) choice[e] = bias ? f(scores[e]! + bias[e]!) : scores[e]!;
    if (grouped) {
      for (let g = 0; g < nGroup; g++) {
        let a = -Infinity;
        let b = -Infinity;
        for (let e = g * per; e < (g + 1) * per; e++) {
          const v = choice[e]!;
          if (v > a) [a, b] = [v, a];
          else if (v > b) b = v;
        }
        groupScore[g] = topTwo ? f(a + b) : a;
      }
      topIndices(groupScore, topkGroup, keptGroups, 0);
      for (let e = 0; e < E; e++) if (!keptGroups.includes(Math.floor(e / per))) choice[e] = 0;
    }
    topIndices(choice, K, chosen, 0);
    let sum = 0;
    for (let k = 0; k < K; k++) {
      const w = gatherWeights ? scores[chosen[k]!]! : choice[chosen[k]!]!;
      weights[t * K + k] = w;
      ids[t * K + k] = chosen[k]!;
      sum += w;
    }
    if (cfg.renormalize) {
      const d = f(f(sum) + f(1e-20));
      for (let k = 0; k < K; k++) weights[t * K + k] = f(weights[t * K + k]! / d);
    }
    if (scale !== null) for (let k = 0; k < K; k++) weights[t * K + k] = f(weights[t * K + k]! * scale);
  }
  return { ids, weights, topK: K };
}

/**
 * This rank's experts' weighted sum over `N` rows of `x` (`[N, H]`) routed by `routing`, `[N, H]` (zero rows for
 * rows none of them serve): each expert's rows through the kernels' linear (its format), SiLU·up
 * (`gatedAct`) and linear again, added per row in ascending expert id.
 */
export function expertsHost(x: Float32Array, N: number, H: number, routing: HostRouting, experts: readonly HostExpert[], kernels: Pick<PlanKernels, 'linear' | 'gatedAct'>): Float32Array {
  const out = new Float32Array(N * H);
  const K = routing.topK;
  for (const expert of experts) {
    const rows: number[] = [];
    const scales: number[] = [];
    for (let t = 0; t < N; t++) {
      for (let k = 0; k < K; k++) {
        if (routing.ids[t * K + k] !== expert.id) continue;
        rows.push(t);
        scales.push(routing.weights[t * K + k]!);
      }
    }
    const n = rows.length;
    if (n === 0) continue;
    const xe = new Float32Array(n * H);
    rows.forEach((t, r) => xe.set(x.subarray(t * H, (t + 1) * H), r * H));
    const I = expert.down.k;
    const gateUp = new Float32Array(n * 2 * I);
    kernels.linear({ data: xe, offset: 0, stride: H }, n, expert.gateUp, { data: gateUp, offset: 0, stride: 2 * I }, false, null);
    const act = new Float32Array(n * I);
    kernels.gatedAct('silu', { data: gateUp, offset: 0, stride: 2 * I }, { data: act, offset: 0, stride: I }, n, I);
    const y = new Float32Array(n * H);
    kernels.linear({ data: act, offset: 0, stride: I }, n, expert.down, { data: y, offset: 0, stride: H }, false, null);
    rows.forEach((t, r) => {
      const w = scales[r]!;
      for (let h = 0; h < H; h++) out[t * H + h] = f(out[t * H + h]! + f(y[r * H + h]! * w));
    });
  }
  return out;
}

/**
 * The op: this rank's experts' weighted sum into `op.out`; with `op.exchange` (EP across DP replicas) the
 * rows go through the token exchange first and the op is async (a plan boundary). `bias` = the correction
 * bias values (uploaded once) or null.
 */
export function moeHost(
  op: MoeOp,
  T: number,
  buf: HostBuffers,
  bias: Float32Array | null,
  experts: readonly HostExpert[],
  kernels: Pick<PlanKernels, 'linear' | 'gatedAct'>,
): void | Promise<void> {
  const H = op.x.width;
  if (op.out.width !== H || op.logits.width !== op.numExperts) {
    throw new WeftError(`moe: views x ${H}, logits ${op.logits.width}, out ${op.out.width} columns; expected ${H}, ${op.numExperts}, ${H}`);
  }
  const x = columns(buf(op.x.act), op.x, T);
  const logits = columns(buf(op.logits.act), op.logits, T);
  const write = (rows: Float32Array, start: number) => {
    const dst = buf(op.out.act);
    const n = rows.length / H;
    for (let t = 0; t < T; t++) {
      const at = t * op.out.act.width + op.out.col;
      if (t >= start && t < start + n) dst.set(rows.subarray((t - start) * H, (t - start + 1) * H), at);
      else dst.fill(0, at, at + H);
    }
  };
  if (!op.exchange) return write(expertsHost(x, T, H, routeHost(op, logits, T, bias), experts, kernels), 0);
  const { ep, tp, dispatch, owners } = op.exchange;
  // Each TP peer dispatches an even share of the rows they hold alike (no row is sent twice), as FusedMoE.forward.
  const [start, len] = tokenShare(T, tp.worldSize, tp.rankInGroup);
  const routing = routeHost(op, logits.subarray(start * op.numExperts, (start + len) * op.numExperts), len, bias);
  const mine = tf.tensor2d(x.subarray(start * H, (start + len) * H), [len, H]);
  const local = (xs: tf.Tensor2D, r: HostRouting) => tf.tensor2d(expertsHost(xs.dataSync() as Float32Array, xs.shape[0], H, r, experts, kernels), [xs.shape[0], H]);
  return dispatchToExperts(dispatch, ep, mine, routing, local, owners).then(async (y) => {
    mine.dispose();
    write((await y.data()) as Float32Array, start);
    y.dispose();
  });
}

/** A view's columns as a contiguous `[rows, width]` copy. */
function columns(data: Float32Array, v: ActView, rows: number): Float32Array {
  if (v.col === 0 && v.width === v.act.width) return data.subarray(0, rows * v.width);
  const out = new Float32Array(rows * v.width);
  for (let t = 0; t < rows; t++) out.set(data.subarray(t * v.act.width + v.col, t * v.act.width + v.col + v.width), t * v.width);
  return out;
}

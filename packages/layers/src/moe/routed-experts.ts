/**
 * The routed experts one rank holds and their computation. Without expert
 * parallelism a rank holds every expert with its intermediate dim split over
 * TP (gate|up column-split, down row-split), so its output is a partial sum;
 * with it, a rank holds whole experts (those its expert map names).
 *
 * Checkpoint layout (Hugging Face): `experts.N.{gate,up,down}_proj.weight`;
 * parameters are `experts.N.gate_up_proj.weight` [2·I/tp, H] (shard 0 = gate,
 * 1 = up, or one already-fused [2·I, H] tensor) and `experts.N.down_proj.weight`
 * [H, I/tp].
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, divide, WeftError } from '@weft/core';
import { fusedShardLoader } from '../linear/merged-column-parallel-linear.js';
import { LinearWeight } from '../linear/linear-weight.js';
import { expectCheckpointShape, type Parameter, type WeightLoader } from '../parameter.js';
import type { ExpertMap } from './expert-map.js';
import type { HostRouting } from './router.js';
import { siluAndMulOp } from '../kernels/index.js';
import type { MoeExpert } from '../plan/ops.js';

export interface RoutedExpertsOptions {
  /** The MoE block, e.g. `model.layers.1.mlp`. */
  prefix: string;
  hiddenSize: number;
  /** moe_intermediate_size (whole, before any TP split). */
  intermediateSize: number;
  numExperts: number;
  /** Experts held here (every expert without EP). */
  expertMap: ExpertMap;
  /** Split of the intermediate dim: TP size and rank without EP, 1 and 0 with it. */
  tpSize: number;
  tpRank: number;
}

export class RoutedExperts {
  readonly prefix: string;
  readonly hiddenSize: number;
  readonly numExperts: number;
  readonly expertMap: ExpertMap;
  /** Intermediate size held per expert on this rank. */
  readonly intermediatePerRank: number;
  /** By local id. */
  readonly gateUp: LinearWeight[];
  readonly down: LinearWeight[];
  private readonly expertName: RegExp;

  constructor(opts: RoutedExpertsOptions) {
    const { prefix, hiddenSize: H, intermediateSize: I, numExperts: E, expertMap } = opts;
    if (expertMap.map.length !== E) throw new ConfigError(`${prefix}: expert map covers ${expertMap.map.length} experts, the layer has ${E}`);
    const per = divide(I, opts.tpSize, `${prefix} moe_intermediate_size`);
    const src = opts.tpRank * per;
    const gateUpLoader = fusedShardLoader([
      { id: 0, size: I, per, srcOffset: src, dstOffset: 0 },
      { id: 1, size: I, per, srcOffset: src, dstOffset: per },
    ]);
    const downLoader: WeightLoader = (param, weight) => {
      expectCheckpointShape(weight, [H, I], param);
      param.set(weight.narrow(1, src, per), weight.name);
    };
    this.prefix = prefix;
    this.hiddenSize = H;
    this.numExperts = E;
    this.expertMap = expertMap;
    this.intermediatePerRank = per;
    // Each expert weight takes its storage and matmul from its linear method (fp32, bf16, Q8_0, Q4_0).
    this.gateUp = expertMap.globalIds.map((g) => new LinearWeight(`${prefix}.experts.${g}.gate_up_proj.weight`, 2 * per, H, gateUpLoader, [0, 1]));
    this.down = expertMap.globalIds.map((g) => new LinearWeight(`${prefix}.experts.${g}.down_proj.weight`, H, per, downLoader));
    this.expertName = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.experts\\.(\\d+)\\.`);
  }

  parameters(): Parameter[] {
    return [...this.gateUp, ...this.down];
  }

  /** The experts held here as a plan's `moe` op lists them: ascending global id, each with its two weights. */
  planExperts(): MoeExpert[] {
    return this.expertMap.globalIds.map((id, local) => ({ id, gateUp: this.gateUp[local]!, down: this.down[local]! }));
  }

  /** A checkpoint tensor of an expert held by another EP rank: the loader skips it (and reads nothing). */
  isElsewhere(name: string): boolean {
    const m = this.expertName.exec(name);
    if (!m) return false;
    const g = Number(m[1]);
    return g < this.numExperts && this.expertMap.map[g] === -1;
  }

  /**
   * Σ over this rank's experts e chosen by token t of weight(t, e) · down_e(SiLU(gate_e x_t) · up_e x_t),
   * for every row of `x` [N, H]. Ids that are not held here (or −1, padding) contribute nothing.
   * Per token the contributions are added in ascending expert id, as HF's index_add_ loop does.
   */
  compute(x: tf.Tensor2D, routing: HostRouting): tf.Tensor2D {
    const [N, H] = x.shape;
    const { ids, weights, topK: K } = routing;
    if (ids.length !== N * K || weights.length !== N * K) {
      throw new WeftError(`${this.prefix}: routing for ${ids.length / K} tokens, hidden states for ${N}`);
    }
    const E = this.numExperts;
    const map = this.expertMap.map;
    const tokens: number[][] = this.gateUp.map(() => []);
    const scales: number[][] = this.gateUp.map(() => []);
    for (let t = 0; t < N; t++) {
      for (let k = 0; k < K; k++) {
        const e = ids[t * K + k]!;
        const local = e >= 0 && e < E ? map[e]! : -1;
        if (local < 0) continue;
        tokens[local]!.push(t);
        scales[local]!.push(weights[t * K + k]!);
      }
    }
    // Row of each (token, slot) in the stacked expert outputs; `rows` (one past the end) is a zero row.
    const slotsOf = new Int32Array(N);
    const rowOf: Int32Array[] = [];
    let rows = 0;
    tokens.forEach((ts) => {
      for (const t of ts) {
        const s = slotsOf[t]!++;
        if (s === rowOf.length) rowOf.push(new Int32Array(N).fill(-1));
        rowOf[s]![t] = rows++;
      }
    });
    for (const col of rowOf) for (let t = 0; t < N; t++) if (col[t] === -1) col[t] = rows;

    return tf.tidy(() => {
      if (rows === 0) return tf.zeros([N, H]) as tf.Tensor2D;
      const outs: tf.Tensor2D[] = [];
      tokens.forEach((ts, local) => {
        if (ts.length === 0) return;
        const xe = tf.gather(x, tf.tensor1d(ts, 'int32'));
        const act = siluAndMulOp(this.gateUp[local]!.apply(xe));
        const y = this.down[local]!.apply(act);
        outs.push(tf.mul(y, tf.tensor2d(scales[local]!, [ts.length, 1])));
      });
      const stacked = tf.concat([...outs, tf.zeros([1, H])], 0);
      let out = tf.gather(stacked, tf.tensor1d(rowOf[0]!, 'int32')) as tf.Tensor2D;
      for (let s = 1; s < rowOf.length; s++) out = tf.add(out, tf.gather(stacked, tf.tensor1d(rowOf[s]!, 'int32')));
      return out;
    });
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}

/// <reference types="@webgpu/types" />
/**
 * The moe op on the WebGPU executor: a plan boundary. The router logits come
 * back to the host and are routed exactly as the host executor routes them
 * (`routeHost`, moe/router.ts's rules in fp32); the step's (token, weight)
 * pairs go up in one write, grouped by this rank's experts in ascending id;
 * then the plan's linear kernel in the weight's format over every local
 * expert's weights stacked in one buffer: gate|up reading the tokens' rows in
 * place with SiLU·up fused, down writing one row per (token, expert) pair —
 * one GEMV dispatch each for all experts when none has more than 16 rows,
 * else two per expert with tokens (the GEMM) — and a combine adding each
 * token's pair rows in ascending expert id, as the tfjs path sums them. Experts on other EP ranks or TP shards give this rank's part; the
 * layer's recorded all-reduce completes the sum.
 */
import { WeftError } from '@weft/core';
import { routingMethod } from '../../moe/router.js';
import { routeHost } from '../host/moe.js';
import type { MoeOp, PlanAct } from '../ops.js';
import { vectorData } from '../weights.js';
import { BUF } from './device.js';
import type { ShapedKernel } from './kernel-recorder.js';
import { linearKernel, per256, simple, type Kernel, type KernelContext } from './plan-kernels.js';
import { GEMV_MAX_ROWS, GEMV_ROWS, gemvWgsl, type MatmulSpec } from './wgsl-matmul.js';
import type { Binder } from './wgsl-common.js';
import { combineWgsl, routeDecl, routeLayout, routerWgsl, type RouterSpec } from './wgsl-moe.js';


interface ExpertKernels {
  id: number;
  gateUp: Kernel;
  down: Kernel;
}

/** An expert linear over every slot with tokens at once: one workgroup row per slot (GEMV, ≤ 16 rows each). */
function groupedKernel(tag: string, spec: MatmulSpec, cols: number): Kernel {
  return {
    tag,
    variant: ({ T }) => `gemv${T}`,
    code: (b, v) => gemvWgsl(b, spec, Number(v.slice(4))),
    // shape.S carries the number of slots with tokens.
    workgroups: ({ S }) => (S > 0 ? [Math.ceil(cols / GEMV_ROWS), S] : null),
  };
}

export class MoeExperts {
  readonly route: GPUBuffer;
  private readonly combine: Kernel;
  private readonly experts: ExpertKernels[];
  private readonly grouped: { gateUp: Kernel; down: Kernel };
  /** Routing on the device (steps of ≤ 16 rows; null where the op's shape does not allow it). */
  private readonly router: Kernel | null;
  private readonly bias: Float32Array | null;
  private readonly maxEntries: number;
  private readonly words: Uint32Array;

  constructor(
    private readonly device: GPUDevice,
    private readonly op: MoeOp,
    ctx: KernelContext,
    scratch: (name: string, width: number, rows: number) => PlanAct,
    maxRows: number,
  ) {
    const H = op.x.width;
    if (op.out.width !== H) throw new WeftError(`webgpu plan: moe writes ${op.out.width} columns of ${op.out.act.name}, reads ${H}`);
    const n = op.experts.length;
    if (n === 0) throw new WeftError(`webgpu plan: moe ${op.out.act.name} holds no experts on this rank`);
    this.maxEntries = maxRows * op.routing.topK;
    const l = routeLayout(n, this.maxEntries);
    this.words = new Uint32Array(l.words);
    this.route = device.createBuffer({ size: l.words * 4, usage: BUF.STORAGE | BUF.COPY_DST, label: 'moe route' });
    this.bias = op.correctionBias ? vectorData(op.correctionBias) : null;
    let prev = -1;
    for (const e of op.experts) {
      if (e.id <= prev) throw new WeftError(`webgpu plan: moe experts must come in ascending id (${prev} then ${e.id})`);
      prev = e.id;
    }
    // Every local expert's weights stacked (expert s's rows from s·n): one binding serves any of them.
    const first = op.experts[0]!;
    const name = first.gateUp.name.replace(/\.experts\.\d+\./, '.experts.*.');
    const gateUp = ctx.stacked(op.experts.map((e) => e.gateUp), name);
    const down = ctx.stacked(op.experts.map((e) => e.down), name.replace(/gate_up_proj|w13/, 'down_proj'));
    const [N2, I] = [first.gateUp.shape[0]!, first.down.shape[1]!];
    // The gated rows of every (token, expert) pair of the step, pair by pair in slot order.
    const act = scratch('moe.act', I, this.maxEntries);
    // Each pair's down-projected row; the combine adds a token's rows in ascending expert id.
    const ye = scratch('moe.y', H, this.maxEntries);
    const whole = (a: PlanAct) => ({ act: a, col: 0, width: a.width });
    this.combine = simple('moe_combine', (b) => combineWgsl(b, ye, op.out, this.route, op.routing.topK, n, this.maxEntries), (T) => per256(T * H));
    const specs = (slot: number | null) => {
      const bind = (b: Binder) => routeDecl(b, this.route, slot, n, this.maxEntries);
      const grouped = slot === null;
      return {
        gateUp: { w: gateUp, x: op.x, out: whole(act), bias: null, accumulate: false, gateUp: 'silu' as const, route: { bind, x: 'token' as const, row0: `SLOT * ${N2}u`, n: N2, grouped } },
        down: { w: down, x: whole(act), out: whole(ye), bias: null, accumulate: false, gateUp: null, route: { bind, x: 'entry' as const, row0: `SLOT * ${H}u`, n: H, grouped } },
      };
    };
    this.experts = op.experts.map((e, slot) => {
      const sp = specs(slot);
      // gate|up reads the expert's tokens' rows in place; down writes one row per pair.
      return { id: e.id, gateUp: linearKernel('moe_gate_up_silu', sp.gateUp), down: linearKernel('moe_down', sp.down) };
    });
    const g = specs(null);
    this.grouped = { gateUp: groupedKernel('moe_gate_up_silu', g.gateUp, N2 / 2), down: groupedKernel('moe_down', g.down, H) };
    const cfg = op.routing;
    const method = routingMethod({ ...cfg, correctionBias: this.bias });
    const nGroup = cfg.nGroup ?? 1;
    const keep = cfg.topkGroup ?? nGroup;
    const spec: RouterSpec = {
      numExperts: op.numExperts,
      topK: cfg.topK,
      scoring: cfg.scoring,
      groups: method !== 'greedy' && keep < nGroup ? { n: nGroup, keep } : null,
      topTwo: method === 'noaux_tc' || this.bias !== null,
      renormalize: cfg.renormalize,
      scale: cfg.routedScalingFactor !== undefined && cfg.routedScalingFactor !== 1 ? cfg.routedScalingFactor : null,
      localIds: op.experts.map((e) => e.id),
    };
    // Per-row score arrays live in registers / private memory: up to 256 experts.
    const biasBuf = op.correctionBias ? ctx.vector(op.correctionBias) : null;
    this.router = op.numExperts <= 256 ? simple('moe_router', (b) => routerWgsl(b, op.logits, this.route, biasBuf, spec, this.maxEntries), () => [1, 1]) : null;
  }

  /** Whether a step of T rows routes on the device (no read-back). */
  onDevice(T: number): boolean {
    return this.router !== null && T <= GEMV_MAX_ROWS;
  }

  /** The step's dispatches with routing on the device: router, gate|up and down over every slot, combine. */
  deviceDispatches(T: number): ShapedKernel[] {
    const slots = Math.min(this.experts.length, T * this.op.routing.topK);
    const grouped = { T, S: slots, decode: false };
    const rows = { T, S: 0, decode: false };
    return [
      { kernel: this.router!, shape: rows },
      { kernel: this.grouped.gateUp, shape: grouped },
      { kernel: this.grouped.down, shape: grouped },
      { kernel: this.combine, shape: rows },
    ];
  }

  /**
   * Route `logits` (`[T, E]`, the op's view) on the host, upload the pairs, and return the step's expert
   * dispatches: with at most 16 rows per expert, gate|up and down once each over every expert with tokens;
   * otherwise two per such expert, in ascending id. Either way each row's sum runs in ascending expert id.
   */
  dispatches(logits: Float32Array, T: number): ShapedKernel[] {
    const { ids, weights, topK } = routeHost(this.op, logits, T, this.bias);
    const n = this.experts.length;
    const l = routeLayout(n, this.maxEntries);
    const w = this.words;
    const wf = new Float32Array(w.buffer);
    w.fill(0xffffffff, l.pairs, l.pairs + T * topK);
    const filled = new Uint8Array(T);
    const per: ShapedKernel[] = [];
    let at = 0;
    let active = 0;
    let most = 0;
    for (const [slot, e] of this.experts.entries()) {
      w[2 * slot] = at;
      let c = 0;
      for (let t = 0; t < T; t++) {
        for (let k = 0; k < topK; k++) {
          if (ids[t * topK + k] !== e.id) continue;
          w[l.tokens + at + c] = t;
          wf[l.weights + at + c] = weights[t * topK + k]!;
          // Slots ascend with expert id: a token's pairs are listed in the order the sum takes them.
          w[l.pairs + t * topK + filled[t]!++] = at + c;
          c++;
        }
      }
      w[2 * slot + 1] = c;
      at += c;
      if (c === 0) continue;
      w[l.active + 1 + active++] = slot;
      most = Math.max(most, c);
      const shape = { T: c, S: c, decode: false };
      per.push({ kernel: e.gateUp, shape }, { kernel: e.down, shape });
    }
    w[l.active] = active;
    this.device.queue.writeBuffer(this.route, 0, w.buffer, 0, l.words * 4);
    const combine = { kernel: this.combine, shape: { T, S: 0, decode: false } };
    if (active === 0) return [combine];
    // Up to 16 rows per expert: one GEMV dispatch each for gate|up and down over every expert with tokens.
    if (most <= GEMV_MAX_ROWS) {
      const shape = { T: most, S: active, decode: false };
      return [{ kernel: this.grouped.gateUp, shape }, { kernel: this.grouped.down, shape }, combine];
    }
    return [...per, combine];
  }

  destroy(): void {
    this.route.destroy();
  }
}

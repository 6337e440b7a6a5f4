/// <reference types="@webgpu/types" />
/**
 * The moe op on the WebGPU executor: a plan boundary. The router logits come
 * back to the host and are routed exactly as the host executor routes them
 * (`routeHost`, moe/router.ts's rules in fp32); the step's (token, weight)
 * pairs go up in one write, grouped by this rank's experts in ascending id;
 * then per expert with tokens, two dispatches of the plan's linear kernel in
 * the weight's format (GEMV for up to 16 rows, else the GEMM): gate|up
 * reading the tokens' rows in place with SiLU·up fused, and down adding the
 * weighted rows into the output (zeroed first). Experts on other EP ranks or TP shards give this rank's part; the
 * layer's recorded all-reduce completes the sum.
 */
import { WeftError } from '@weft/core';
import { routeHost } from '../host/moe.js';
import type { MoeOp, PlanAct } from '../ops.js';
import { vectorData } from '../weights.js';
import { BUF } from './device.js';
import { linearKernel, per256, simple, type Kernel, type KernelContext, type StepShape } from './plan-kernels.js';
import type { Binder } from './wgsl-common.js';
import { routeDecl, routeLayout, zeroWgsl } from './wgsl-moe.js';

/** One dispatch of a step outside the plan's fixed list: a kernel at its own shape (an expert's row count). */
export interface ShapedKernel {
  kernel: Kernel;
  shape: StepShape;
}

interface ExpertKernels {
  id: number;
  gateUp: Kernel;
  down: Kernel;
}

export class MoeExperts {
  readonly route: GPUBuffer;
  private readonly zero: Kernel;
  private readonly experts: ExpertKernels[];
  private readonly bias: Float32Array | null;
  private readonly maxEntries: number;
  private readonly words: Uint32Array;

  constructor(
    private readonly device: GPUDevice,
    private readonly op: MoeOp,
    ctx: KernelContext,
    scratch: (name: string, width: number) => PlanAct,
    maxRows: number,
  ) {
    const H = op.x.width;
    if (op.out.width !== H) throw new WeftError(`webgpu plan: moe writes ${op.out.width} columns of ${op.out.act.name}, reads ${H}`);
    const n = op.experts.length;
    this.maxEntries = maxRows * op.routing.topK;
    const l = routeLayout(n, this.maxEntries);
    this.words = new Uint32Array(l.words);
    this.route = device.createBuffer({ size: l.words * 4, usage: BUF.STORAGE | BUF.COPY_DST, label: 'moe route' });
    this.bias = op.correctionBias ? vectorData(op.correctionBias) : null;
    const whole = (a: PlanAct) => ({ act: a, col: 0, width: a.width });
    this.zero = simple('moe_zero', (b) => zeroWgsl(b, op.out), (T) => per256(T * H));
    let prev = -1;
    this.experts = op.experts.map((e, slot) => {
      if (e.id <= prev) throw new WeftError(`webgpu plan: moe experts must come in ascending id (${prev} then ${e.id})`);
      prev = e.id;
      const act = scratch('moe.act', e.down.shape[1]!);
      const bind = (b: Binder) => routeDecl(b, this.route, slot, n, this.maxEntries);
      return {
        id: e.id,
        // gate|up reads the expert's tokens' rows in place; down adds its weighted rows into theirs.
        gateUp: linearKernel('moe_gate_up_silu', { w: ctx.matrix(e.gateUp), x: op.x, out: whole(act), bias: null, accumulate: false, gateUp: 'silu', route: { bind, gather: true, scatter: false } }),
        down: linearKernel('moe_down', { w: ctx.matrix(e.down), x: whole(act), out: op.out, bias: null, accumulate: false, gateUp: null, route: { bind, gather: false, scatter: true } }),
      };
    });
  }

  /** Route `logits` (`[T, E]`, the op's view) on the host, upload the pairs, and return the step's expert dispatches. */
  dispatches(logits: Float32Array, T: number): ShapedKernel[] {
    const { ids, weights, topK } = routeHost(this.op, logits, T, this.bias);
    const n = this.experts.length;
    const l = routeLayout(n, this.maxEntries);
    const w = this.words;
    const wf = new Float32Array(w.buffer);
    const out: ShapedKernel[] = [{ kernel: this.zero, shape: { T, S: 0, decode: false } }];
    let at = 0;
    for (const [slot, e] of this.experts.entries()) {
      w[2 * slot] = at;
      let c = 0;
      for (let t = 0; t < T; t++) {
        for (let k = 0; k < topK; k++) {
          if (ids[t * topK + k] !== e.id) continue;
          w[l.tokens + at + c] = t;
          wf[l.weights + at + c] = weights[t * topK + k]!;
          c++;
        }
      }
      w[2 * slot + 1] = c;
      at += c;
      if (c === 0) continue;
      const shape = { T: c, S: c, decode: false };
      out.push({ kernel: e.gateUp, shape }, { kernel: e.down, shape });
    }
    this.device.queue.writeBuffer(this.route, 0, w.buffer, 0, l.words * 4);
    return out;
  }

  destroy(): void {
    this.route.destroy();
  }
}

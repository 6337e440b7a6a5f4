/// <reference types="@webgpu/types" />
/**
 * The moe op on the WebGPU executor, with no host round trip: one router dispatch routes every row of the
 * step on the device (moe/router.ts's rules in fp32, as `routeHost`), counts the pairs per local expert, takes
 * the prefix sums and scatters the (token, weight) pairs into each expert's run, listing the step's row tiles;
 * then one gate|up dispatch (SiLU·up fused, reading the tokens' rows in place) and one down dispatch (one row
 * per pair) over every tile of every expert — the tiled GEMV in tiles of up to 8 rows for steps of ≤ 64 rows,
 * the GEMM in tiles of 64 above — on a grid sized for the most tiles the step can have (the workgroups past the
 * step's tiles return at once), every local expert's weights stacked in one buffer so each tile reads its
 * expert's rows: at decode sizes each selected expert's weights are read once per step; and a combine adding
 * each token's pair rows in ascending expert id, as the tfjs path sums them. The dispatches depend on the
 * step's row count alone, so the step's command buffer is recorded ahead like a dense step's, and the
 * pipelines are one per tile size (not per expert or row count). Experts on other EP ranks or TP shards give
 * this rank's part; the layer's recorded all-reduce completes the sum. Above 256 experts the routing runs on
 * the host (`dispatches`: the logits read back, the same buffer written).
 */
import { WeftError } from '@weft/core';
import { routingMethod } from '../../moe/router.js';
import { routeHost } from '../host/moe.js';
import type { MoeOp, PlanAct } from '../ops.js';
import { vectorData } from '../weights.js';
import { BUF } from './device.js';
import type { GpuMatrix } from './gpu-weights.js';
import type { ShapedKernel } from './kernel-recorder.js';
import { per256, simple, type Kernel, type KernelContext, type StepShape } from './plan-kernels.js';
import { gemvShape, gemvOutputs, gemvTiledWgsl } from './wgsl-gemv.js';
import { GEMM_TILE, gemmWgsl, type MatmulSpec } from './wgsl-matmul.js';
import { combineWgsl, MOE_GEMM_TILE, moeTileBound, moeTileRows, routeDecl, routeLayout, ROUTER_MAX_EXPERTS, routerWgsl, type RouteLayout, type RouterSpec } from './wgsl-moe.js';

/**
 * An expert linear over the step's tiles: variant per tile size (the GEMV's baked row count, or the GEMM),
 * workgroup rows = the most tiles a step of T rows can have.
 */
function tiledKernel(tag: string, spec: (tile: number) => MatmulSpec, cols: number, bound: (T: number) => number, gemmK: 16 | 32 | undefined): Kernel {
  const shape = (tile: number, s: MatmulSpec) => gemvShape(tile, s.gateUp !== null, { format: s.w.format, cols, k: s.w.k });
  return {
    tag,
    variant: ({ T }) => `${moeTileRows(T)}`,
    code: (b, v) => {
      const tile = Number(v);
      const s = spec(tile);
      return tile === MOE_GEMM_TILE ? gemmWgsl(b, s, gemmK) : gemvTiledWgsl(b, s, tile, shape(tile, s));
    },
    workgroups: ({ T }, v) => {
      if (T <= 0) return null;
      const tile = Number(v);
      const perWg = tile === MOE_GEMM_TILE ? GEMM_TILE : gemvOutputs(shape(tile, spec(tile)), spec(tile).gateUp !== null);
      return [Math.ceil(cols / perWg), bound(T)];
    },
  };
}

/**
 * Every local expert's gate|up and down weights stacked (expert s's rows from s·n): one binding serves any of
 * them. The executor calls this at upload (while the weights' host values are at hand); later calls get the
 * same matrices.
 */
export function stackExperts(op: MoeOp, stacked: KernelContext['stacked']): { gateUp: GpuMatrix; down: GpuMatrix } {
  const name = op.experts[0]!.gateUp.name.replace(/\.experts\.\d+\./, '.experts.*.');
  return { gateUp: stacked(op.experts.map((e) => e.gateUp), name), down: stacked(op.experts.map((e) => e.down), name.replace(/gate_up_proj|w13/, 'down_proj')) };
}

export class MoeExperts {
  readonly route: GPUBuffer;
  private readonly layout: RouteLayout;
  private readonly combine: Kernel;
  private readonly gateUp: Kernel;
  private readonly down: Kernel;
  /** Routing on the device (null above ROUTER_MAX_EXPERTS: the host routes). */
  private readonly router: Kernel | null;
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
    const topK = op.routing.topK;
    const maxEntries = maxRows * topK;
    const bound = (T: number) => moeTileBound(T, topK, n);
    let maxTiles = 0;
    for (let T = 1; T <= maxRows; T++) maxTiles = Math.max(maxTiles, bound(T));
    this.layout = routeLayout(n, maxEntries, maxTiles);
    this.words = new Uint32Array(this.layout.words);
    this.route = device.createBuffer({ size: this.layout.words * 4, usage: BUF.STORAGE | BUF.COPY_DST, label: 'moe route' });
    let prev = -1;
    for (const e of op.experts) {
      if (e.id <= prev) throw new WeftError(`webgpu plan: moe experts must come in ascending id (${prev} then ${e.id})`);
      prev = e.id;
    }
    const first = op.experts[0]!;
    const { gateUp: gateUpW, down: downW } = stackExperts(op, ctx.stacked);
    const [N2, I] = [first.gateUp.shape[0]!, first.down.shape[1]!];
    // The gated rows of every (token, expert) pair of the step, pair by pair in slot order.
    const act = scratch('moe.act', I, maxEntries);
    // Each pair's down-projected row; the combine adds a token's rows in ascending expert id.
    const ye = scratch('moe.y', H, maxEntries);
    const whole = (a: PlanAct) => ({ act: a, col: 0, width: a.width });
    const l = this.layout;
    this.combine = simple('moe_combine', (b) => combineWgsl(b, ye, op.out, this.route, topK, l), (T) => per256(T * H));
    const route = (tile: number, x: 'token' | 'entry', rows: number) => ({ bind: (b: Parameters<typeof routeDecl>[0]) => routeDecl(b, this.route, l, tile), x, row0: `SLOT * ${rows}u`, n: rows, grouped: true });
    // gate|up reads the expert's tokens' rows in place; down writes one row per pair.
    const gateUpSpec = (tile: number): MatmulSpec => ({ w: gateUpW, x: op.x, out: whole(act), bias: null, accumulate: false, gateUp: 'silu', route: route(tile, 'token', N2) });
    const downSpec = (tile: number): MatmulSpec => ({ w: downW, x: whole(act), out: whole(ye), bias: null, accumulate: false, gateUp: null, route: route(tile, 'entry', H) });
    this.gateUp = tiledKernel('moe_gate_up_silu', gateUpSpec, N2 / 2, bound, ctx.tuning?.gemmK);
    this.down = tiledKernel('moe_down', downSpec, H, bound, ctx.tuning?.gemmK);
    const cfg = op.routing;
    const method = routingMethod({ ...cfg, correctionBias: op.correctionBias });
    const nGroup = cfg.nGroup ?? 1;
    const keep = cfg.topkGroup ?? nGroup;
    const spec: RouterSpec = {
      numExperts: op.numExperts,
      topK,
      scoring: cfg.scoring,
      groups: method !== 'greedy' && keep < nGroup ? { n: nGroup, keep } : null,
      topTwo: method === 'noaux_tc' || op.correctionBias !== null,
      renormalize: cfg.renormalize,
      scale: cfg.routedScalingFactor !== undefined && cfg.routedScalingFactor !== 1 ? cfg.routedScalingFactor : null,
      localIds: op.experts.map((e) => e.id),
    };
    const biasBuf = op.correctionBias ? ctx.vector(op.correctionBias) : null;
    this.router = op.numExperts <= ROUTER_MAX_EXPERTS ? simple('moe_router', (b) => routerWgsl(b, op.logits, this.route, biasBuf, spec, l), () => [1, 1]) : null;
  }

  /** Whether a step of T rows routes on the device (no read-back). */
  onDevice(_T: number): boolean {
    return this.router !== null;
  }

  /** The experts' dispatches after the routing: gate|up and down over every tile, then the combine. */
  private expertDispatches(T: number): ShapedKernel[] {
    const shape: StepShape = { T, S: 0, decode: false };
    return [
      { kernel: this.gateUp, shape },
      { kernel: this.down, shape },
      { kernel: this.combine, shape },
    ];
  }

  /** The step's dispatches with routing on the device: router, gate|up, down, combine. */
  deviceDispatches(T: number): ShapedKernel[] {
    return [{ kernel: this.router!, shape: { T, S: 0, decode: false } }, ...this.expertDispatches(T)];
  }

  /**
   * Route `logits` (`[T, E]`, the op's view) on the host into the routing buffer the device router would
   * write (same slots, tiles and per-token pair order), and return the experts' dispatches.
   */
  dispatches(logits: Float32Array, T: number): ShapedKernel[] {
    const { ids, weights, topK } = routeHost(this.op, logits, T, this.op.correctionBias ? vectorData(this.op.correctionBias) : null);
    const l = this.layout;
    const w = this.words;
    const wf = new Float32Array(w.buffer);
    const tr = moeTileRows(T);
    w.fill(0xffffffff, l.pairs, l.pairs + T * topK);
    const filled = new Uint8Array(T);
    let at = 0;
    let tiles = 0;
    for (const [slot, e] of this.op.experts.entries()) {
      w[l.offsets + slot] = at;
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
      w[l.counts + slot] = c;
      for (let r0 = 0; r0 < c; r0 += tr) {
        w[l.tiles + 2 * tiles] = slot;
        w[l.tiles + 2 * tiles++ + 1] = r0;
      }
      at += c;
    }
    w[l.numTiles] = tiles;
    this.device.queue.writeBuffer(this.route, 0, w.buffer, 0, l.words * 4);
    return this.expertDispatches(T);
  }

  destroy(): void {
    this.route.destroy();
  }
}

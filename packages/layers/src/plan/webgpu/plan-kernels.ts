/// <reference types="@webgpu/types" />
/**
 * A plan's ops as the dispatches the WebGPU executor records: one kernel per
 * op (two for attention: the KV write, then attention), with the fusions the
 * plan allows without changing its numbers — a linear whose output only
 * feeds a gated activation becomes one GEMV/GEMM with the activation in its
 * epilogue, and rotary ops on adjacent heads of one buffer (q then k) become
 * one dispatch. Kernels pick a variant per step shape (the GEMV for ≤ 16
 * rows, specialised per row count; grouped-query attention staging for
 * prefill) and say how many workgroups the shape needs.
 */
import { WeftError } from '@weft/core';
import type { RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import type { ActView, AttentionOp, HeadMatrices, LinearOp, PlanAct, PlanOp, RotaryOp } from '../ops.js';
import { split } from './device.js';
import type { GpuMatrix } from './gpu-weights.js';
import { attentionSharedBytes, attentionWgsl, kvWriteWgsl, ropeKvWgsl, type CacheBuffers, type FusedDecode } from './wgsl-attention.js';
import { WEIGHT_FNS, WEIGHT_FNS_CONVERT, type Binder } from './wgsl-common.js';
import { flashAttentionWgsl, flashConfig, flashWorkgroups } from './wgsl-flash-attention.js';
import { mlaAttentionConfig, mlaAttentionWgsl, mlaAttentionWorkgroups } from './wgsl-mla-attention.js';
import { copyHeadsWgsl, headMatmulWgsl, headMatmulWorkgroups } from './wgsl-heads.js';
import { decodeAttentionFits, decodeAttentionWgsl } from './wgsl-decode-attention.js';
import { addWgsl, argmaxWgsl, embedWgsl, gatedActWgsl, gatherSampledWgsl, rmsNormWgsl, rotaryWgsl, softcapWgsl } from './wgsl-elementwise.js';
import { CHUNK, gemvOutputs, gemvShape, gemvTiledWgsl, type GemvShape, type GemvWeight } from './wgsl-gemv.js';
import { GEMM_TILE, GEMV_MAX_ROWS, GEMV_ROWS, gemmWgsl, gemvWgsl, type MatmulSpec } from './wgsl-matmul.js';

/** Kernel shapes a caller may override (benches compare them on a device); defaults otherwise. */
export interface KernelTuning {
  /** The decode GEMV's shape per activation row count (and the linear's weight), or 'rows4' for the untiled GEMV (4 weight rows a workgroup). */
  gemv?: ((m: number, gateUp: boolean, w: GemvWeight) => GemvShape) | 'rows4';
  /** 'convert': the linears decode Q8_0 / Q4_0 with int → float conversions, as before the exponent trick (same floats; a device A/B). */
  weightDecode?: 'convert';
  /** 'staged': prefill attention on the per-row kernel instead of the flash one. */
  attention?: 'staged';
  /** The flash kernel's query vectors per workgroup and keys per tile (where workgroup memory allows). */
  flash?: { QV: number; BC: number };
  /** K per step of the prefill GEMM through workgroup memory (default 16). */
  gemmK?: 16 | 32;
  /** Decode attention: 'scalar' (the first kernel: one thread scores the row's own key, 4 keys in flight in P·V), 'vec4' (wgsl-decode-attention.ts, subgroup max where the device has a known subgroup size), 'vec4-nosg' (the same without subgroups). */
  decodeAttention?: 'scalar' | 'vec4' | 'vec4-nosg';
  /** Kernels in each leading command buffer of a step, submitted one by one before the rest (the executor's default [8, 40]; [] = one). */
  submitSplit?: number[];
  /** Rows of one chunk of the chunked tiled GEMV (default CHUNK, 8): steps of more rows run it in chunks. */
  gemvChunk?: number;
  /** Rows up to which a linear runs the tiled GEMV (in chunks above a chunk's rows): 16 … GEMV_CHUNK_ROWS (the default). */
  gemvMaxRows?: number;
  /** 'poll': the host awaits each step's read-back on dawn-node's polling alone, as before gpu-wait.ts (a device A/B of the long steps). */
  hostWait?: 'poll';
}

export interface KernelContext {
  matrix(w: LinearOp['weight']): GpuMatrix;
  vector(p: NonNullable<LinearOp['bias']>): GPUBuffer;
  heads(m: HeadMatrices): GPUBuffer;
  /** Same-shape weights (a MoE layer's experts) stacked into one matrix. */
  stacked(ws: readonly LinearOp['weight'][], name: string): GpuMatrix;
  cache(index: number): CacheBuffers;
  cosSin(rope: RotaryEmbedding): GPUBuffer;
  /** Workgroup memory the device allows. */
  sharedBytes: number;
  /** The device's subgroup size where it has subgroups of one known size (`subgroupSize`), else null. */
  subgroupSize: number | null;
  tuning?: KernelTuning;
}

/** What a step's dispatches depend on: its rows, sampled rows, and whether every sequence brings one row (decode). */
export interface StepShape {
  T: number;
  S: number;
  decode: boolean;
}

/** One dispatch kind of the step: `variant` names the shader for a shape, `code` writes it, `workgroups` sizes it. */
export interface Kernel {
  readonly tag: string;
  variant(shape: StepShape): string;
  code(b: Binder, variant: string): string;
  /** null: nothing to do at this shape. */
  workgroups(shape: StepShape, variant: string): [number, number] | null;
}

const rowsOf = (a: PlanAct, T: number, S: number) => (a.rows === 'tokens' ? T : S);
const one = (n: number): [number, number] | null => (n > 0 ? split(n) : null);
export const per256 = (n: number): [number, number] | null => one(Math.ceil(n / 256));

export function simple(tag: string, code: (b: Binder) => string, wg: (T: number, S: number, decode: boolean) => [number, number] | null): Kernel {
  return { tag, variant: () => '', code: (b) => code(b), workgroups: ({ T, S, decode }) => wg(T, S, decode) };
}

/** Rows up to which a linear runs a GEMV (the tiled one in chunks of `gemvChunk` rows above a chunk), not the 64 × 64 GEMM. */
export const GEMV_CHUNK_ROWS = 64;

/** The GEMV shape of a linear at m rows under `tuning`. */
function shapeOf(spec: Pick<MatmulSpec, 'gateUp' | 'w'>, tuning: KernelTuning, m: number): GemvShape {
  const gateUp = spec.gateUp !== null;
  const w: GemvWeight = { format: spec.w.format, cols: gateUp ? spec.w.n / 2 : spec.w.n, k: spec.w.k };
  return typeof tuning.gemv === 'function' ? tuning.gemv(m, gateUp, w) : gemvShape(m, gateUp, w);
}

/** Whether a linear's GEMV is the register-tiled one: not for routed (expert) rows, nor under the 'rows4' override. */
function tiledGemv(spec: Pick<MatmulSpec, 'route'>, tuning: KernelTuning): boolean {
  return !spec.route && tuning.gemv !== 'rows4';
}

/**
 * The most rows a linear runs as a GEMV (its input norm fused) under `tuning`: for the tiled GEMV
 * `tuning.gemvMaxRows` (default GEMV_CHUNK_ROWS; in chunks of `gemvChunk` rows above that) while its workgroups fit one
 * dispatch dimension, else 16.
 */
export function gemvMaxRows(spec: Pick<MatmulSpec, 'route' | 'gateUp' | 'w'>, tuning: KernelTuning = {}): number {
  if (!tiledGemv(spec, tuning)) return GEMV_MAX_ROWS;
  const cols = spec.gateUp ? spec.w.n / 2 : spec.w.n;
  if (Math.ceil(cols / gemvOutputs(shapeOf(spec, tuning, chunkOf(tuning)), spec.gateUp !== null)) > 65535) return GEMV_MAX_ROWS;
  return Math.min(GEMV_CHUNK_ROWS, Math.max(GEMV_MAX_ROWS, tuning.gemvMaxRows ?? defaultGemvMaxRows(spec)));
}

/**
 * From the H200 run of 2026-12-03 20:01 (bench gpu-step, steady clocks): the chunked GEMV beats the 64 × 64 GEMM
 * at 24–64 rows for every bf16 linear (gate|up 2.6–4.7 ms a step against 6.4) and for Q4_0's other linears, but
 * Q4_0's gate|up re-decodes its nibbles per chunk: 5.5 ms a step at 24–32 rows (GEMM 5.6), 8.0 at 48 and 10.9 at
 * 64 (GEMM 5.8). Quantized gate|up runs the GEMM above 32 rows.
 */
function defaultGemvMaxRows(spec: Pick<MatmulSpec, 'gateUp' | 'w'>): number {
  return spec.gateUp !== null && (spec.w.format === 'q4_0' || spec.w.format === 'q8_0') ? 32 : GEMV_CHUNK_ROWS;
}

const chunkOf = (tuning: KernelTuning) => Math.min(GEMV_MAX_ROWS, Math.max(1, tuning.gemvChunk ?? CHUNK));

/** The linear's kernel at m rows: the GEMV specialised per row count (up to a chunk), the chunked tiled GEMV, or the GEMM. */
function linearVariant(m: number, maxGemv: number, chunk: number): string {
  return m <= chunk ? `gemv${m}` : m <= maxGemv ? 'gemvc' : 'gemm';
}

export function linearKernel(tag: string, spec: MatmulSpec, tuning: KernelTuning = {}): Kernel {
  const cols = spec.gateUp ? spec.w.n / 2 : spec.w.n;
  const tiled = tiledGemv(spec, tuning);
  const maxGemv = gemvMaxRows(spec, tuning);
  const shape = (m: number) => shapeOf(spec, tuning, m);
  // The untiled GEMV ('rows4', routed rows) runs every row count up to 16 at once.
  const chunk = tiled ? chunkOf(tuning) : GEMV_MAX_ROWS;
  return {
    tag,
    variant: ({ T, S }) => linearVariant(rowsOf(spec.x.act, T, S), maxGemv, chunk),
    code: (b, v) => {
      const m = Number(v.slice(4));
      const code = v === 'gemm' ? gemmWgsl(b, spec, tuning.gemmK) : v === 'gemvc' ? gemvTiledWgsl(b, spec, chunk, shape(chunk), true) : tiled ? gemvTiledWgsl(b, spec, m, shape(m)) : gemvWgsl(b, spec, m);
      return tuning.weightDecode === 'convert' ? code.replace(WEIGHT_FNS, WEIGHT_FNS_CONVERT) : code;
    },
    workgroups: ({ T, S }, v) => {
      const m = rowsOf(spec.x.act, T, S);
      if (m === 0) return null;
      if (v === 'gemm') return [Math.ceil(cols / GEMM_TILE), Math.ceil(m / GEMM_TILE)];
      if (v === 'gemvc') return [Math.ceil(cols / gemvOutputs(shape(chunk), spec.gateUp !== null)), Math.ceil(m / chunk)];
      return split(Math.ceil(cols / (tiled ? gemvOutputs(shape(m), spec.gateUp !== null) : GEMV_ROWS)));
    },
  };
}

/**
 * The decode attention kernel unless tuned otherwise: the vec4 one without subgroups (H200, 2026-12-03 20:01,
 * 22 layers a step: 111–131 µs against the scalar kernel's 138–151; its subgroup max measured the same, 118–131).
 */
const DECODE_ATTENTION: NonNullable<KernelTuning['decodeAttention']> = 'vec4-nosg';

/** The attention op's kernels; `fused`: the rotary just before it (q and k, in place) folds into decode steps. */
function attentionKernels(op: AttentionOp, ctx: KernelContext, fused: FusedDecode | null): Kernel[] {
  const G = op.numHeads / op.numKvHeads;
  if (!Number.isInteger(G)) throw new WeftError(`webgpu plan: attention with ${op.numHeads} heads over ${op.numKvHeads} KV heads`);
  // The widest power-of-two group of query heads (sharing a KV head) whose staged tiles fit in workgroup memory.
  let gw = 1;
  for (let g = 2; g <= Math.min(G, 64); g *= 2) if (G % g === 0 && attentionSharedBytes(op, g) <= ctx.sharedBytes) gw = g;
  if (attentionSharedBytes(op, 1) + 4 * (op.headDim + op.vHeadDim + 1) > ctx.sharedBytes) throw new WeftError(`webgpu plan: attention head_dim ${op.headDim} needs more workgroup memory than the device has`);
  const perRow = op.numKvHeads * (op.headDim + (op.v ? op.vHeadDim : 0));
  // Prefill-sized steps: K/V tiles shared by a block of rows × the heads of a KV head, no score matrix (flash).
  const flash = ctx.tuning?.attention === 'staged' ? null : flashConfig(op, ctx.sharedBytes, ctx.tuning?.flash);
  // MLA's latent heads (V = K prefix, 576 / 512) leave flash no room: queries in registers instead (wgsl-mla-attention.ts).
  const mla = ctx.tuning?.attention === 'staged' || flash ? null : mlaAttentionConfig(op, ctx.sharedBytes);
  const dec = ctx.tuning?.decodeAttention ?? DECODE_ATTENTION;
  const vec4 = fused && dec !== 'scalar' && decodeAttentionFits(op);
  const sg = dec === 'vec4' ? ctx.subgroupSize : null;
  return [
    simple('kv_write', (b) => kvWriteWgsl(b, op, ctx.cache(op.cacheIndex)), (T, _S, decode) => (fused && decode ? null : per256(T * perRow))),
    {
      tag: 'attention',
      // Decode-sized steps: a workgroup per head keeps more of the GPU busy; prefill shares K/V tiles across the group.
      variant: ({ T, decode }) => (fused && decode ? 'fused' : T <= GEMV_MAX_ROWS ? 'gw1' : flash ? 'flash' : mla ? 'mla' : `gw${gw}`),
      code: (b, v) =>
        v === 'fused' ? (vec4 ? decodeAttentionWgsl(b, op, ctx.cache(op.cacheIndex), fused!, sg) : attentionWgsl(b, op, ctx.cache(op.cacheIndex), 1, fused)) : v === 'flash' ? flashAttentionWgsl(b, op, ctx.cache(op.cacheIndex), flash!) : v === 'mla' ? mlaAttentionWgsl(b, op, ctx.cache(op.cacheIndex), mla!) : attentionWgsl(b, op, ctx.cache(op.cacheIndex), Number(v.slice(2))),
      workgroups: ({ T }, v) => (T <= 0 ? null : v === 'flash' ? flashWorkgroups(op, flash!, T) : v === 'mla' ? mlaAttentionWorkgroups(op, mla!, T) : [v === 'fused' ? op.numHeads : op.numHeads / Number(v.slice(2)), T]),
    },
  ];
}

/** Which views an op reads and writes (for the fusions' liveness checks). */
function io(op: PlanOp): { reads: ActView[]; writes: ActView[] } {
  const whole = (a: PlanAct): ActView => ({ act: a, col: 0, width: a.width });
  switch (op.kind) {
    case 'embed':
      return { reads: [], writes: [whole(op.out)] };
    case 'rmsNorm':
      return { reads: [op.x, ...(op.residual && !op.residualInit ? [op.residual] : [])], writes: [op.out, ...(op.residual ? [op.residual] : [])] };
    case 'linear':
      return { reads: op.accumulate ? [op.x, op.out] : [op.x], writes: [op.out] };
    case 'rotary':
      return { reads: [op.x], writes: [op.x] };
    case 'attention':
      return { reads: [op.q, op.k, ...(op.v ? [op.v] : [])], writes: [op.out] };
    case 'gatedAct':
      return { reads: [op.x], writes: [op.out] };
    case 'add':
      return { reads: [op.a, op.b], writes: [op.out] };
    case 'allReduce':
    case 'softcap':
      return { reads: [op.x], writes: [op.x] };
    case 'gatherSampled':
    case 'gatherColumns':
      return { reads: [op.x], writes: [op.out] };
    case 'copyHeads':
      return { reads: [{ act: op.x.act, col: op.x.col, width: (op.heads - 1) * op.xStride + op.width }], writes: [] };
    case 'headMatmul':
      return { reads: [op.x], writes: [] };
    case 'roundInput':
      return { reads: [], writes: [] };
    case 'moe':
      return { reads: [op.x, op.logits], writes: [op.out] };
    default:
      throw new Error(`plan-kernels: unknown op ${(op as PlanOp).kind}`);
  }
}

const overlaps = (a: ActView, b: ActView) => a.act === b.act && a.col < b.col + b.width && b.col < a.col + a.width;

/** True when `v`'s values are never read after op `i` (overwritten whole first, or never touched again) and are no plan output. */
export function deadAfter(ops: readonly PlanOp[], i: number, v: ActView, outputs: readonly (PlanAct | null)[]): boolean {
  for (let j = i + 1; j < ops.length; j++) {
    const { reads, writes } = io(ops[j]!);
    if (reads.some((r) => overlaps(r, v))) return false;
    if (writes.some((w) => w.act === v.act && w.col <= v.col && w.col + w.width >= v.col + v.width)) return true;
  }
  return !outputs.includes(v.act);
}

const sameView = (a: ActView, b: ActView) => a.act === b.act && a.col === b.col && a.width === b.width;

/** The linear at `ops[i]`, with the gated activation after it fused when its output feeds nothing else; ops used. */
function linearKernels(ops: readonly PlanOp[], i: number, to: number, ctx: KernelContext, outputs: readonly (PlanAct | null)[], norm: MatmulSpec['norm']): [Kernel, number, MatmulSpec] {
  const op = ops[i] as LinearOp;
  const next = ops[i + 1];
  const fuse = i + 1 < to && next?.kind === 'gatedAct' && !op.accumulate && sameView(next.x, op.out) && next.out.act !== op.x.act && deadAfter(ops, i + 1, op.out, outputs);
  const spec: MatmulSpec = { w: ctx.matrix(op.weight), x: op.x, out: fuse ? next.out : op.out, bias: op.bias ? ctx.vector(op.bias) : null, accumulate: op.accumulate, gateUp: fuse ? next.act : null, norm };
  return [linearKernel(`${norm ? 'norm_' : ''}linear${fuse ? `_${next.act}` : ''}`, spec, ctx.tuning), fuse ? 2 : 1, spec];
}

/**
 * Rewrites that keep a plan's numbers (fp32 sums in the same order): a linear whose output only feeds the
 * next norm's residual add accumulates into the residual itself (the norm then reads the residual), and an
 * embedding that only seeds the residual (`residualInit`) is looked up straight into it.
 */
export function fuseResidualAdds(ops: readonly PlanOp[], outputs: readonly (PlanAct | null)[]): PlanOp[] {
  const out = [...ops];
  for (let i = 0; i + 1 < out.length; i++) {
    const op = out[i]!;
    const n = out[i + 1]!;
    if (n.kind !== 'rmsNorm' || !n.residual || n.residual.width !== n.x.width || n.residual.act === n.out.act || !deadAfter(out, i + 1, n.x, outputs)) continue;
    if (op.kind === 'linear' && !n.residualInit && !op.accumulate && sameView(op.out, n.x) && op.x.act !== n.residual.act) {
      out[i] = { ...op, out: n.residual, accumulate: true };
      out[i + 1] = { ...n, x: n.residual, residual: null, residualInit: false };
    } else if (op.kind === 'embed' && n.residualInit && n.x.act === op.out && n.x.col === 0 && n.x.width === op.out.width && n.residual.col === 0 && n.residual.width === n.residual.act.width) {
      out[i] = { ...op, out: n.residual.act };
      out[i + 1] = { ...n, x: n.residual, residual: null, residualInit: false };
    }
  }
  return out;
}

/** Kernels of a boundary-free run of ops `ops[from, to)`. */
export function buildKernels(ops: readonly PlanOp[], from: number, to: number, ctx: KernelContext, outputs: readonly (PlanAct | null)[]): Kernel[] {
  const out: Kernel[] = [];
  for (let i = from; i < to; i++) {
    const op = ops[i]!;
    switch (op.kind) {
      case 'embed': {
        const w = ctx.matrix(op.table);
        if (w.k !== op.out.width) throw new WeftError(`webgpu plan: embedding ${w.name} has ${w.k} columns, ${op.out.name} ${op.out.width}`);
        out.push(simple('embed', (b) => embedWgsl(b, op, w), (T) => one(T)));
        break;
      }
      case 'rmsNorm': {
        const w = ctx.vector(op.weight);
        const groups = op.x.width / op.groupSize;
        if (!Number.isInteger(groups)) throw new WeftError(`webgpu plan: rmsNorm groups of ${op.groupSize} over ${op.x.width} columns of ${op.x.act.name}`);
        const next = ops[i + 1];
        // A residual-free norm whose output only feeds the sampled-row gather (the final norm): norm those rows only.
        if (i + 1 < to && next?.kind === 'gatherSampled' && op.residual === null && sameView(next.x, op.out) && deadAfter(ops, i + 1, op.out, outputs)) {
          out.push(simple('rms_norm_sampled', (b) => rmsNormWgsl(b, op, w, next.out), (_T, S) => (S ? [groups, S] : null)));
          i++;
          break;
        }
        // A whole-row norm whose output only feeds the next linear: the GEMV (≤ 16 rows) normalises as it reads.
        const fuse = i + 1 < to && next?.kind === 'linear' && op.residual === null && groups === 1 && sameView(next.x, op.out) && next.x.act !== next.out.act && op.x.act !== next.out.act && deadAfter(ops, i + 1, op.out, outputs);
        // As many rows as the fused linear (with its gated activation, if fused too) runs as a GEMV.
        const fusedMax = fuse ? gemvMaxRows(linearKernels(ops, i + 1, to, ctx, outputs, null)[2], ctx.tuning) : 0;
        const gemvRows = (T: number, S: number) => fuse && rowsOf(op.x.act, T, S) <= fusedMax;
        out.push(simple('rms_norm', (b) => rmsNormWgsl(b, op, w), (T, S) => (rowsOf(op.x.act, T, S) && !gemvRows(T, S) ? [groups, rowsOf(op.x.act, T, S)] : null)));
        if (fuse) {
          const [k, used] = linearKernels(ops, i + 1, to, ctx, outputs, { x: op.x, weight: w, eps: op.eps, offset: op.weightOffset });
          out.push(k);
          i += used;
        }
        break;
      }
      case 'linear': {
        const [k, used] = linearKernels(ops, i, to, ctx, outputs, null);
        out.push(k);
        i += used - 1;
        break;
      }
      case 'rotary': {
        let heads = op.heads;
        // Adjacent heads of the same buffer with the same rope (q then k of a fused qkv): one dispatch.
        while (i + 1 < to) {
          const n = ops[i + 1]!;
          if (n.kind !== 'rotary' || n.rope !== op.rope || n.x.act !== op.x.act || n.x.col !== op.x.col + heads * op.rope.headSize) break;
          heads += n.heads;
          i++;
        }
        const merged: RotaryOp = { ...op, heads };
        const cs = ctx.cosSin(op.rope);
        const next = ops[i + 1];
        // Rotary of exactly the next attention's q and k, read by nothing after it: decode steps rotate inside attention.
        const fuse =
          i + 1 < to && next?.kind === 'attention' && next.headDim === op.rope.headSize && next.q.act === op.x.act && next.q.col === op.x.col && next.q.width === next.numHeads * next.headDim && next.k.act === op.x.act && next.k.col === next.q.col + next.q.width && heads === next.numHeads + next.numKvHeads && deadAfter(ops, i + 1, { act: op.x.act, col: op.x.col, width: heads * op.rope.headSize }, outputs);
        if (!fuse) {
          out.push(simple('rotary', (b) => rotaryWgsl(b, merged, cs), (T) => per256(T * heads * (op.rope.rotaryDim / 2))));
          break;
        }
        // Decode steps: rotary and the KV write inside attention; other steps: one rotary + KV-write dispatch first.
        const perRow = next.numHeads * (op.rope.rotaryDim / 2) + next.numKvHeads * (next.headDim + (next.v ? next.vHeadDim : 0));
        out.push(simple('rope_kv', (b) => ropeKvWgsl(b, next, ctx.cache(next.cacheIndex), op.rope, cs), (T, _S, decode) => (decode ? null : per256(T * perRow))));
        out.push(...attentionKernels(next, ctx, { rope: op.rope, cs }).filter((k) => k.tag !== 'kv_write'));
        i++;
        break;
      }
      case 'attention':
        out.push(...attentionKernels(op, ctx, null));
        break;
      case 'gatedAct':
        out.push(simple('gated_act', (b) => gatedActWgsl(b, op), (T, S) => per256(rowsOf(op.x.act, T, S) * (op.x.width / 2))));
        break;
      case 'add':
        out.push(simple('add', (b) => addWgsl(b, op), (T, S) => per256(rowsOf(op.out.act, T, S) * op.out.width)));
        break;
      case 'softcap':
        out.push(simple('softcap', (b) => softcapWgsl(b, op), (T, S) => per256(rowsOf(op.x.act, T, S) * op.x.width)));
        break;
      case 'gatherSampled':
        out.push(simple('gather_sampled', (b) => gatherSampledWgsl(b, op), (_T, S) => per256(S * op.x.width)));
        break;
      case 'copyHeads':
        if (op.x.act === op.out.act) throw new WeftError(`webgpu plan: copyHeads within ${op.x.act.name} (x and out must not overlap)`);
        out.push(simple('copy_heads', (b) => copyHeadsWgsl(b, op), (T, S) => per256(rowsOf(op.x.act, T, S) * op.heads * op.width)));
        break;
      case 'headMatmul': {
        const w = ctx.heads(op.weight);
        out.push(simple('head_matmul', (b) => headMatmulWgsl(b, op, w), (T, S) => headMatmulWorkgroups(op, rowsOf(op.x.act, T, S))));
        break;
      }
      case 'roundInput':
        // The WGSL linear kernels are weight-only: they see their input as it is (ops.ts: unchanged).
        break;
      case 'allReduce':
      case 'gatherColumns':
        throw new Error(`plan-kernels: '${op.kind}' is a boundary, not a kernel`);
    }
  }
  return out;
}

/** Greedy argmax of the logits' first `vocab` columns into `ids`. */
export function argmaxKernel(logits: PlanAct, vocab: number, ids: GPUBuffer): Kernel {
  return simple('argmax', (b) => argmaxWgsl(b, logits, vocab, ids), (_T, S) => one(S));
}

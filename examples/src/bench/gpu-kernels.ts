/**
 * The WebGPU executor's kernels alone on the GPU machine (issue 20): what the adapter offers (features,
 * subgroup sizes, subgroup-matrix configurations; a subgroups shader and a subgroup-matrix
 * multiply-accumulate loop compiled and run where offered), then TinyLlama-1.1B's linears — one layer's
 * qkv (norm fused), o (+residual), gate|up (norm, SiLU fused), down (+residual), and the LM head — per
 * weight format, activation-row count and GEMV shape (µs per dispatch, GB/s of weight bytes), and prefill
 * attention at 512 rows (flash against the staged kernel).
 *
 * A shape is `LxR` (L lanes along K, R weight rows a thread), with `uN` N K passes' loads issued before any
 * is decoded and `sg` subgroupAdd sums (64x2u2, 32x4sg), `default` (the executor's choice) or `convert` (the default
 * shape decoding Q8_0 / Q4_0 with int → float conversions, as before the exponent trick). `--choice-out`
 * writes the fastest shape per (format, linear, rows) where it beats `default` by more than `--margin`
 * (bench gpu-step's `--gemv-table` runs whole decode steps with them).
 *
 * usage: node examples/dist/bench/gpu-kernels.js [--formats bf16,q4_0] [--rows 1,16] [--shapes default,64x1,64x2u2,…]
 *          [--reps 50] [--warm-ms 150] [--budget-s S] [--choice-out gemv-choice.json] [--out gpu-kernels.json]
 */
/// <reference types="@webgpu/types" />
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '@weft/core';
import {
  buildAttentionMetadata, defaultWeightLoader, GgmlLinearMethod, hostWeight, LinearWeight, Parameter, PlanBuilder, positionsOf, UnquantizedLinearMethod, view, whole, WebGpuPlanExecutor,
  type AttentionOp, type DevicePlan, type KernelTuning, type PlanStepInput,
} from '@weft/layers';
import { benchPlan, type PlanBenchRow } from './gpu-plan.js';
import { gemvChoice, parseGemvShape, type SweepRow } from './gpu-gemv-table.js';
import { probeAdapter } from './gpu-probe.js';
import { median } from './stats.js';

const { values: v } = parseArgs({
  options: {
    formats: { type: 'string', default: 'bf16,q4_0' },
    rows: { type: 'string', default: '1,4,16' },
    shapes: { type: 'string', default: 'rows4,64x1,64x2,64x4,32x2,32x4,128x1,128x2,16x4,32x1sg,32x2sg,32x4sg' },
    reps: { type: 'string', default: '50' },
    /** ms of the same work on the GPU before each point's timing (the H200 of this lease clocks down while the host works). */
    'warm-ms': { type: 'string', default: '150' },
    /** Stop the sweep (keeping what it has) after this many seconds. */
    'budget-s': { type: 'string', default: '1e9' },
    /** The fastest shape per (format, linear, rows), where it beats `default` by more than `margin` (a fraction). */
    'choice-out': { type: 'string' },
    margin: { type: 'string', default: '0.03' },
    /** Each point runs copies of its linear (distinct device buffers of the same weights) totalling at least this many MB, so the weights stream from HBM as in a decode step (0: one matrix, L2-resident below ~50 MB). */
    'stream-mb': { type: 'string', default: '0' },
    'bandwidth-tb-s': { type: 'string', default: '4.8' },
    out: { type: 'string', default: 'bench-results/gpu-kernels.json' },
    /** Also the whole decode step of bench:gpu's checkpoint in DIR per --plan-formats × --plan-shapes (a GEMV shape for every linear). */
    'plan-dir': { type: 'string' },
    'plan-formats': { type: 'string', default: 'q4_0,bf16' },
    'plan-shapes': { type: 'string', default: 'rows4,default' },
    /** Skip the per-linear sweep. */
    'no-sweep': { type: 'boolean', default: false },
    /** The prefill GEMM at these row counts per K step ('' skips). */
    'gemm-rows': { type: 'string', default: '512' },
    'gemm-shapes': { type: 'string', default: 'k16,k32' },
    /** Prefill attention (flash variants against the staged kernel) at these rows ('' skips). */
    'attention-rows': { type: 'string', default: '512' },
  },
});
const log = (m: string) => process.stderr.write(`[gpu-kernels] ${m}\n`);
const reps = Number(v.reps);
const warmMs = Number(v['warm-ms']);
const sweepEnd = performance.now() + Number(v['budget-s']) * 1000;

/** xorshift32 in (-scale, scale). */
function random(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return a;
}

function weight(n: number, k: number, format: string, seed: number): LinearWeight {
  const w = new LinearWeight(`w${seed}`, n, k, defaultWeightLoader);
  if (format === 'bf16') w.useMethod(new UnquantizedLinearMethod('bfloat16'));
  if (format === 'q8_0' || format === 'q4_0') w.useMethod(new GgmlLinearMethod(format));
  w.load(hostWeight('w', { shape: [n, k], dtype: 'float32', data: random(n * k, seed, 0.05) }));
  return w;
}

function vector(n: number, seed: number): Parameter {
  const p = new Parameter(`v${seed}`, [n]);
  p.load(hostWeight('v', { shape: [n], dtype: 'float32', data: random(n, seed, 0.5).map((x) => x + 1) }));
  return p;
}

function stepInput(T: number, width: number): PlanStepInput {
  const meta = buildAttentionMetadata([{ seqId: 0, queryLen: T, blockTable: Array.from({ length: Math.ceil(T / 16) + 1 }, (_, i) => i) }], 16);
  return { tokenIds: new Int32Array(T), positions: positionsOf(meta), seqs: meta.seqs, blockSize: 16, sampledRows: Int32Array.from([T - 1]), hidden: random(T * width, 7, 1) };
}

interface Linear {
  name: string;
  n: number;
  k: number;
  norm: boolean;
  gateUp: boolean;
  accumulate: boolean;
}

const LINEARS: Linear[] = [
  { name: 'qkv (norm)', n: 2560, k: 2048, norm: true, gateUp: false, accumulate: false },
  { name: 'o (+res)', n: 2048, k: 2048, norm: false, gateUp: false, accumulate: true },
  { name: 'gate_up (norm, silu)', n: 11264, k: 2048, norm: true, gateUp: true, accumulate: false },
  { name: 'down (+res)', n: 2048, k: 5632, norm: false, gateUp: false, accumulate: true },
  { name: 'lm_head', n: 32000, k: 2048, norm: false, gateUp: false, accumulate: false },
];

/** The linear (its norm and activation fused) once per weight in `ws`, one after the other as a step's layers run. */
function linearPlan(l: Linear, ws: LinearWeight[], gn: Parameter): DevicePlan {
  const b = new PlanBuilder();
  const x = b.act('x', l.k);
  const h = b.act('h', l.k);
  const y = b.act('y', l.gateUp ? l.n : l.n);
  const a = b.act('a', l.n / 2);
  for (const w of ws) {
    if (l.norm) b.op({ kind: 'rmsNorm', x: whole(x), out: whole(h), weight: gn, eps: 1e-5, residual: null, residualInit: false, groupSize: l.k, weightOffset: 0 });
    b.op({ kind: 'linear', x: whole(l.norm ? h : x), out: whole(y), weight: w, bias: null, accumulate: l.accumulate });
    if (l.gateUp) b.op({ kind: 'gatedAct', act: 'silu', x: whole(y), out: whole(a) });
  }
  return b.build(1, { inHidden: x, hidden: l.gateUp ? a : y });
}

/** `copies` weights holding `w`'s data: each its own object, so the executor uploads each to its own buffer. */
function copiesOf(w: LinearWeight, copies: number): LinearWeight[] {
  return [w, ...Array.from({ length: copies - 1 }, () => Object.create(w) as LinearWeight)];
}

function tuningOf(shape: string): KernelTuning {
  if (shape === 'rows4') return { gemv: 'rows4' };
  if (shape === 'default') return {};
  if (shape === 'convert') return { weightDecode: 'convert' };
  if (shape === 'k16' || shape === 'k32') return { gemmK: shape === 'k16' ? 16 : 32 };
  return { gemv: (_m, gateUp) => parseGemvShape(shape, gateUp) };
}

/**
 * µs per run of the plan's kernels (those passing `only`), `reps` runs in one submit, median of 3 — after
 * ≥ `--warm-ms` of the same work, so the GPU is at its working clocks (the host builds and quantizes between
 * points, long enough for it to clock down; run 2's figures of 2026-12-03 were taken without this).
 */
async function timeKernels(ex: WebGpuPlanExecutor, T: number, only?: (tag: string) => boolean): Promise<number> {
  const dev = ex.device;
  const runs: number[] = [];
  for (const t0 = performance.now(); performance.now() - t0 < warmMs; ) {
    const enc = dev.createCommandEncoder();
    for (let i = 0; i < reps; i++) ex.encode(enc, T, 1, only, false);
    dev.queue.submit([enc.finish()]);
    await dev.queue.onSubmittedWorkDone();
  }
  for (let r = 0; r < 4; r++) {
    const enc = dev.createCommandEncoder();
    for (let i = 0; i < reps; i++) ex.encode(enc, T, 1, only, false);
    const cb = enc.finish();
    await dev.queue.onSubmittedWorkDone();
    const t = performance.now();
    dev.queue.submit([cb]);
    await dev.queue.onSubmittedWorkDone();
    if (r) runs.push(((performance.now() - t) / reps) * 1000);
  }
  return median(runs);
}

interface GemvRow extends SweepRow {
  /** Copies of the linear the point ran (`--stream-mb`); `us` is per copy. */
  copies: number;
  gb_s: number;
  /** max |out − the untiled GEMV's out| / max |out| on the first step. */
  rel_diff: number;
}

/** Appends each point to `out` (`saved` after each linear, so a cut run keeps what it measured). */
async function sweepLinears(formats: string[], rows: number[], shapes: string[], out: GemvRow[] = [], saved = () => {}): Promise<GemvRow[]> {
  for (const format of formats) {
    for (const [li, l] of LINEARS.entries()) {
      const w = weight(l.n, l.k, format, 100 + li);
      const gn = vector(l.k, 200 + li);
      const copies = Math.max(1, Math.ceil((Number(v['stream-mb']) * 1e6) / w.bytes));
      const plan = linearPlan(l, copiesOf(w, copies), gn);
      const base = new Map<number, Float32Array>();
      for (const shape of shapes) {
        // int → float decoding is a quantized weights' variant only.
        if (shape === 'convert' && format !== 'q8_0' && format !== 'q4_0') continue;
        if (performance.now() > sweepEnd) {
          log(`budget spent: ${format} ${l.name} from ${shape} on not measured`);
          break;
        }
        const ex = await WebGpuPlanExecutor.create({ plan, maxRows: 512, maxSeqs: 16, maxModelLen: 528, tuning: tuningOf(shape), device: await sharedDevice() });
        try {
          await ex.initCaches(40, 16);
          const bytes = ex.weightBytes;
          if (shape === shapes[0]) log(`${format} ${l.name}: ${copies} copies, ${(bytes / 1e6).toFixed(1)} MB, kernels ${ex.tags(1, 1).join(',')}`);
          for (const m of rows) {
            // Checked first (accumulating linears add into zeroed buffers once), then timed.
            const got = (await ex.step(stepInput(m, l.k))).hidden!.slice();
            if (!base.has(m)) base.set(m, got);
            const ref = base.get(m)!;
            let d = 0;
            let mx = 0;
            for (let i = 0; i < ref.length; i++) {
              d = Math.max(d, Math.abs(got[i]! - ref[i]!));
              mx = Math.max(mx, Math.abs(ref[i]!));
            }
            ex.prepare(stepInput(m, l.k));
            const all = await timeKernels(ex, m, (t) => t !== 'rms_norm');
            const us = all / copies;
            const r = { format, linear: l.name, n: l.n, k: l.k, gateUp: l.gateUp, rows: m, shape, copies, us: +us.toFixed(1), gb_s: +(bytes / all / 1e3).toFixed(0), rel_diff: Number.isNaN(d) ? -1 : +(d / mx).toExponential(2) };
            out.push(r);
            log(JSON.stringify(r));
          }
        } finally {
          ex.dispose();
        }
      }
      w.dispose?.();
      saved();
    }
  }
  return out;
}

/** TinyLlama's attention at a prefill of T rows: flash against the staged kernel (µs per layer). */
async function prefillAttention(T: number): Promise<Record<string, number>> {
  const H = 32;
  const Hk = 4;
  const D = 64;
  const b = new PlanBuilder();
  const qkv = b.act('qkv', (H + 2 * Hk) * D);
  const o = b.act('o', H * D);
  const op: AttentionOp = {
    kind: 'attention', q: view(qkv, 0, H * D), k: view(qkv, H * D, Hk * D), v: view(qkv, (H + Hk) * D, Hk * D), out: whole(o), cacheIndex: b.nextCache(),
    numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: D, scale: 0.125, logitsSoftCap: null, slidingWindow: null, valueIsKeyPrefix: false,
  };
  b.op(op);
  const plan = b.build(1, { inHidden: qkv, hidden: o });
  const res: Record<string, number> = {};
  const variants: [string, KernelTuning][] = [
    ['flash 32×32', {}],
    ['flash 64×32', { flash: { QV: 64, BC: 32 } }],
    ['flash 16×32', { flash: { QV: 16, BC: 32 } }],
    ['flash 32×16', { flash: { QV: 32, BC: 16 } }],
    ['staged', { attention: 'staged' }],
  ];
  for (const [name, tuning] of variants) {
    const ex = await WebGpuPlanExecutor.create({ plan, maxRows: T, maxSeqs: 16, maxModelLen: T + 16, tuning, device: await sharedDevice() });
    try {
      await ex.initCaches(Math.ceil(T / 16) + 2, 16);
      ex.prepare(stepInput(T, (H + 2 * Hk) * D));
      res[name] = +(await timeKernels(ex, T, (t) => t === 'attention')).toFixed(1);
    } finally {
      ex.dispose();
    }
  }
  return res;
}

let device: GPUDevice | null = null;
async function sharedDevice(): Promise<GPUDevice> {
  if (!device) {
    const { requestDevice } = await import('@weft/layers');
    device = await requestDevice('gpu-kernels');
  }
  return device;
}

await initBackend({ prefer: 'webgpu' });
await initBackend({ prefer: 'cpu' });
const result: Record<string, unknown> = { date: new Date().toISOString() };
result.adapter = await probeAdapter(log);
log(`adapter: ${JSON.stringify(result.adapter)}`);
const save = () => {
  mkdirSync(dirname(String(v.out)), { recursive: true });
  writeFileSync(String(v.out), JSON.stringify(result, null, 1));
};
for (const T of String(v['attention-rows']).split(',').filter(Boolean).map(Number)) {
  result[`prefillAttention${T}`] = await prefillAttention(T);
  log(`prefill attention, ${T} rows, one layer (µs): ${JSON.stringify(result[`prefillAttention${T}`])}`);
}
// Subgroup-reduced shapes where the adapter runs 32-wide subgroups.
const sg = (result.adapter as { subgroups?: { subgroupSize?: number } }).subgroups?.subgroupSize === 32;
const shapes = String(v.shapes).split(',').filter((x) => sg || !x.endsWith('sg'));
result.linears = [];
if (!v['no-sweep']) await sweepLinears(String(v.formats).split(','), String(v.rows).split(',').map(Number), shapes, result.linears as GemvRow[], save);
if (v['gemm-rows']) result.gemm = await sweepLinears(String(v.formats).split(','), String(v['gemm-rows']).split(',').map(Number), String(v['gemm-shapes']).split(','));
save();
if (v['plan-dir']) {
  const planRows: PlanBenchRow[] = [];
  for (const shape of String(v['plan-shapes']).split(',')) {
    planRows.push(...(await benchPlan({ dir: String(v['plan-dir']), formats: String(v['plan-formats']).split(','), batches: [1, 16], promptLen: 512, decodeTokens: 32, bandwidth: Number(v['bandwidth-tb-s']) * 1e12, log, tuning: { label: shape, kernels: tuningOf(shape) } })));
  }
  result.plan = planRows;
  console.log('engine | batch | prefill tok/s | decode tok/s | step ms | GPU ms | kernel µs');
  for (const r of planRows) console.log(`${r.engine} | ${r.batch} | ${r.prefill_tok_s} | ${r.decode_tok_s} | ${r.step_ms} | ${r.gpu_step_ms} | ${JSON.stringify(r.kernel_us)}`);
}
save();
// The best shape per (format, linear, rows) against the untiled GEMV.
const rows = [...(result.linears as GemvRow[]), ...((result.gemm as GemvRow[] | undefined) ?? [])];
const keys = [...new Set(rows.map((r) => `${r.format}|${r.linear}|${r.rows}`))];
console.log('format | linear | rows | rows4 µs | best shape | best µs | GB/s | worst rel diff of any shape');
for (const k of keys) {
  const rs = rows.filter((r) => `${r.format}|${r.linear}|${r.rows}` === k);
  const base = rs.find((r) => r.shape === 'rows4' || r.shape === 'k16');
  const best = rs.reduce((a, b) => (b.us < a.us ? b : a));
  console.log(`${k.replaceAll('|', ' | ')} | ${base?.us ?? '—'} | ${best.shape} | ${best.us} | ${best.gb_s} | ${Math.max(...rs.map((r) => (r.rel_diff < 0 ? Infinity : r.rel_diff)))}`);
}
if (v['choice-out']) {
  const choice = gemvChoice(result.linears as GemvRow[], Number(v.margin));
  writeFileSync(String(v['choice-out']), JSON.stringify(choice, null, 1));
  log(`choice: ${JSON.stringify(choice)}`);
}
(device as GPUDevice | null)?.destroy();
process.exit(0);

/**
 * bench:kernels' child side: one candidate family at one thread count times every shape, row count and
 * format it offers, on weights rotating through enough copies to miss the caches (see kernels.ts).
 */
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@weft/core';
import { cpuKernels, quantizeQ4_0, quantizeQ8_0, toBf16, type Q4_0Weight, type Q8_0Weight } from '@weft/cpu-kernels';
import { matMulNBitsModel } from './onnx-matmul-nbits.js';
import { median } from './stats.js';

export interface KernelCase {
  candidate: string;
  format: 'f32' | 'bf16' | 'q8_0' | 'q4_0';
  shape: 'gate_up' | 'lm_head';
  m: number;
  threads: number;
  ms: number;
  gbPerS: number;
  note?: string;
}

export const KERNEL_SHAPES = { gate_up: { n: 5632, k: 2048 }, lm_head: { n: 32000, k: 2048 } } as const;
export const BYTES_PER_WEIGHT = { f32: 4, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32 } as const;

/** A child's job: one candidate family at one thread count. */
export interface KernelJob {
  family: 'native' | 'portable' | 'tfjs' | 'tfjs-onednn' | 'ort' | 'wasm';
  threads: number;
  rows: number[];
  shapes: (keyof typeof KERNEL_SHAPES)[];
}

/** Where scripts/setup-kernel-bench.sh installs onnxruntime-node and wabt (never into the workspace). */
export const KERNEL_BENCH_DEPS = process.env.WEFT_KERNEL_BENCH_DEPS ?? join(homedir(), '.cache', 'weft', 'kernel-bench');

/** The part of onnxruntime-node's API used here (it is not a workspace dependency). */
interface OrtTensor {
  dispose(): void;
}
interface Ort {
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
  InferenceSession: {
    create(model: Uint8Array, options: Record<string, unknown>): Promise<{ run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>; release(): Promise<void> }>;
  };
}

const ROTATE_BYTES = 320e6;
type Format = KernelCase['format'];

function lcg(len: number, scale: number, seed = 1): Float32Array {
  const out = new Float32Array(len);
  let s = seed >>> 0;
  for (let i = 0; i < len; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}


/** Median ms of a call, after one warm rotation through the copies; at least `minCalls`, about `budgetMs`. */
async function timeCalls(copies: number, call: (i: number) => unknown, minCalls = 8, budgetMs = 700): Promise<number> {
  for (let i = 0; i < copies; i++) await call(i);
  const ts: number[] = [];
  const start = performance.now();
  for (let i = 0; (ts.length < minCalls || performance.now() - start < budgetMs) && ts.length < 400; i++) {
    const t0 = performance.now();
    await call(i % copies);
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

function copiesFor(bytes: number): number {
  return Math.max(2, Math.ceil(ROTATE_BYTES / bytes));
}

type Weights = { f32?: Float32Array; bf16?: Uint16Array; q8_0?: Q8_0Weight; q4_0?: Q4_0Weight };

function weightsOf(wf: Float32Array, format: Format, copies: number): Weights[] {
  const one: Weights =
    format === 'f32' ? { f32: wf } : format === 'bf16' ? { bf16: toBf16(wf) } : format === 'q8_0' ? { q8_0: quantizeQ8_0(wf) } : { q4_0: quantizeQ4_0(wf) };
  const out = [one];
  for (let c = 1; c < copies; c++) {
    out.push({
      f32: one.f32?.slice(),
      bf16: one.bf16?.slice(),
      q8_0: one.q8_0 && { qs: one.q8_0.qs.slice(), d: one.q8_0.d.slice() },
      q4_0: one.q4_0 && { qs: one.q4_0.qs.slice(), d: one.q4_0.d.slice() },
    });
  }
  return out;
}

export async function runKernelJob(job: KernelJob, emit: (c: KernelCase) => void): Promise<void> {
  const { family, threads } = job;
  for (const shape of job.shapes) {
    const { n, k } = KERNEL_SHAPES[shape];
    const wf = lcg(n * k, 0.05, n);
    const formats: Format[] = family === 'tfjs' || family === 'tfjs-onednn' ? ['f32'] : family === 'ort' || family === 'wasm' ? ['q8_0', 'q4_0'] : ['q8_0', 'q4_0', 'bf16'];
    for (const format of formats) {
      const bytes = n * k * BYTES_PER_WEIGHT[format];
      const rows = family === 'portable' && shape === 'lm_head' ? [1] : job.rows;
      const copies = family === 'portable' ? 2 : copiesFor(bytes);
      const ws = weightsOf(wf, format, copies);
      const record = (candidate: string, m: number, ms: number, note?: string) =>
        emit({ candidate, format, shape, m, threads, ms, gbPerS: bytes / (ms / 1000) / 1e9, note });
      if (family === 'native' || family === 'portable') {
        const isas = family === 'portable' ? ['portable'] : cpuKernels().info.isas.filter((i) => i !== 'portable' && i !== 'scalar');
        for (const isa of isas) {
          const kern = cpuKernels({ isa, threads });
          for (const m of rows) {
            const x = lcg(m * k, 1, 7), out = new Float32Array(m * n);
            const call = (i: number) =>
              format === 'q8_0' ? kern.gemmQ8_0(x, m, k, ws[i]!.q8_0!, n, out) : format === 'q4_0' ? kern.gemmQ4_0(x, m, k, ws[i]!.q4_0!, n, out) : kern.gemmBf16(x, m, k, ws[i]!.bf16!, n, out);
            record(family === 'portable' ? 'weft portable JS' : `weft native ${isa}`, m, await timeCalls(copies, call, family === 'portable' ? 2 : 8, family === 'portable' ? 0 : 700));
          }
        }
      } else if (family === 'tfjs' || family === 'tfjs-onednn') {
        const info = await initBackend({ prefer: 'tensorflow' });
        if (info.name !== 'tensorflow') throw new Error(`the tensorflow backend is not available: ${info.reason}`);
        const wt = ws.map((w) => tf.tensor2d(w.f32!, [n, k]));
        for (const m of rows) {
          const x = tf.tensor2d(lcg(m * k, 1, 7), [m, k]);
          const call = (i: number) => {
            const y = tf.matMul(x, wt[i]!, false, true);
            y.dataSync();
            y.dispose();
          };
          record(`tfjs-node ${family === 'tfjs' ? 'Eigen' : 'oneDNN'}`, m, await timeCalls(copies, call));
          x.dispose();
        }
        wt.forEach((t) => t.dispose());
      } else if (family === 'ort') {
        const ort = createRequire(join(KERNEL_BENCH_DEPS, 'package.json'))('onnxruntime-node') as Ort;
        for (const level of [4, 0]) {
          const sessions: Awaited<ReturnType<Ort['InferenceSession']['create']>>[] = [];
          for (const w of ws)
            sessions.push(
              await ort.InferenceSession.create(matMulNBitsModel((w.q8_0 ?? w.q4_0)!, n, k, format === 'q8_0' ? 8 : 4, level), {
                intraOpNumThreads: threads,
                interOpNumThreads: 1,
                executionMode: 'sequential',
                graphOptimizationLevel: 'all',
              }),
            );
          for (const m of rows) {
            const a = new ort.Tensor('float32', lcg(m * k, 1, 7), [m, k]);
            const call = async (i: number) => (await sessions[i]!.run({ A: a })).Y!.dispose();
            record(`onnxruntime-node MatMulNBits ${level === 4 ? 'a8 (accuracy_level 4)' : 'weight-only (accuracy_level 0)'}`, m, await timeCalls(copies, call));
          }
          for (const s of sessions) await s.release();
        }
      } else {
        const { wasmKernels } = await import('./wasm-kernels.js');
        const wk = await wasmKernels();
        for (const variant of wk.variants) {
          for (const m of rows) {
            const x = lcg(m * k, 1, 7), out = new Float32Array(m * n);
            const call = (i: number) => (format === 'q8_0' ? wk.gemmQ8_0(variant, x, m, k, ws[i]!.q8_0!, n, out) : wk.gemmQ4_0(variant, x, m, k, ws[i]!.q4_0!, n, out));
            record(`wasm SIMD ${variant} (ours)`, m, await timeCalls(copies, call), wk.note);
          }
        }
      }
    }
  }
}

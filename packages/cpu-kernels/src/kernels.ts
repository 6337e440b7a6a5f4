/**
 * The kernel set: `cpuKernels({ isa, threads })` binds the gemms to one ISA
 * path (a native one the CPU has, or 'portable'); the package's top-level
 * functions use the best path found at load.
 */
import { availableParallelism } from 'node:os';
import { checkBf16, checkGemm, checkQ4_0, checkQ8_0, type Q4_0Layout, type Q4_0Weight, type Q8_0Weight } from './formats.js';
import { loadNative } from './native.js';
import { gemmBf16Portable, gemmQ4_0Portable, gemmQ8_0Portable } from './portable.js';
import { q4_0Rows } from './q4-tile.js';

export interface KernelInfo {
  /** The ISA path these kernels run: 'avx512' | 'avx2' | 'scalar' (native) or 'portable' (JS). */
  isa: string;
  /** Every path available on this machine, best first ('portable' last, always there). */
  isas: string[];
  threads: number;
  /** Why native is or is not used. */
  reason: string;
  /** 'a8': Q8_0/Q4_0 quantize x to Q8_0 blocks and use integer block dots (match the a8 references); bf16 is weight-only. */
  semantics: { q8_0: 'a8'; q4_0: 'a8'; bf16: 'weight-only' };
  /**
   * The Q4_0 layout this path reads fastest: 'tile16' where the addon has tile kernels for its ISA (asked of the
   * addon, never assumed), else 'rows'. Every path reads both (same bits); a weight's owner repacks to this one.
   */
  q4_0Layout: Q4_0Layout;
}

export interface CpuKernels {
  info: KernelInfo;
  /** out[m, n] = x[m, k] · Wᵀ, W Q8_0 [n, k]. */
  gemmQ8_0(x: Float32Array, m: number, k: number, w: Q8_0Weight, n: number, out: Float32Array): void;
  gemmQ4_0(x: Float32Array, m: number, k: number, w: Q4_0Weight, n: number, out: Float32Array): void;
  gemmBf16(x: Float32Array, m: number, k: number, w: Uint16Array, n: number, out: Float32Array): void;
}

export interface CpuKernelsOptions {
  /** An ISA path from kernelInfo().isas; the best one by default. */
  isa?: string;
  /** Threads a call splits its output rows over (native only; the calling thread is one); default 1. */
  threads?: number;
}

const SEMANTICS = { q8_0: 'a8', q4_0: 'a8', bf16: 'weight-only' } as const;

export function availableIsas(): string[] {
  const { addon } = loadNative();
  return [...(addon ? addon.info().isas : []), 'portable'];
}

export function cpuKernels(options: CpuKernelsOptions = {}): CpuKernels {
  const { addon, reason } = loadNative();
  const isas = availableIsas();
  const isa = options.isa ?? isas[0]!;
  if (!isas.includes(isa)) throw new Error(`cpuKernels: isa '${isa}' is not available here (available: ${isas.join(', ')}; ${reason})`);
  const threads = options.threads ?? 1;
  const maxThreads = addon ? addon.info().maxThreads : 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > Math.max(maxThreads, availableParallelism()))
    throw new Error(`cpuKernels: threads = ${threads} must be an integer from 1 to ${Math.max(maxThreads, availableParallelism())}`);
  const q4_0Layout: Q4_0Layout = addon?.gemmQ4_0Tile16 && addon.info().q4_0Tile16?.includes(isa) ? 'tile16' : 'rows';
  const info: KernelInfo = { isa, isas, threads: isa === 'portable' ? 1 : threads, reason, semantics: SEMANTICS, q4_0Layout };
  if (isa === 'portable' || !addon) {
    return {
      info,
      gemmQ8_0(x, m, k, w, n, out) { checkGemm('gemmQ8_0', x, m, k, n, out); checkQ8_0('gemmQ8_0', w, n, k); gemmQ8_0Portable(x, m, k, w, n, out); },
      gemmQ4_0(x, m, k, w, n, out) { checkGemm('gemmQ4_0', x, m, k, n, out); checkQ4_0('gemmQ4_0', w, n, k); gemmQ4_0Portable(x, m, k, w, n, out); },
      gemmBf16(x, m, k, w, n, out) { checkGemm('gemmBf16', x, m, k, n, out); checkBf16('gemmBf16', w, n, k); gemmBf16Portable(x, m, k, w, n, out); },
    };
  }
  const i = isas.indexOf(isa);
  return {
    info,
    gemmQ8_0(x, m, k, w, n, out) { checkGemm('gemmQ8_0', x, m, k, n, out); checkQ8_0('gemmQ8_0', w, n, k); addon.gemmQ8_0(i, threads, x, m, k, w.qs, w.d, n, out); },
    gemmQ4_0(x, m, k, w, n, out) {
      checkGemm('gemmQ4_0', x, m, k, n, out);
      checkQ4_0('gemmQ4_0', w, n, k);
      if (w.layout !== 'tile16') addon.gemmQ4_0(i, threads, x, m, k, w.qs, w.d, n, out);
      else if (addon.gemmQ4_0Tile16) addon.gemmQ4_0Tile16(i, threads, x, m, k, w.qs, w.d, n, out);
      else {
        const r = q4_0Rows(w, n, k); // an addon built before the layout
        addon.gemmQ4_0(i, threads, x, m, k, r.qs, r.d, n, out);
      }
    },
    gemmBf16(x, m, k, w, n, out) { checkGemm('gemmBf16', x, m, k, n, out); checkBf16('gemmBf16', w, n, k); addon.gemmBf16(i, threads, x, m, k, w, n, out); },
  };
}

let best: CpuKernels | undefined;
const bestKernels = () => (best ??= cpuKernels());

/** Which path the top-level gemms run, and what else is available. */
export function kernelInfo(): KernelInfo {
  return bestKernels().info;
}

export function gemmQ8_0(x: Float32Array, m: number, k: number, w: Q8_0Weight, n: number, out: Float32Array): void {
  bestKernels().gemmQ8_0(x, m, k, w, n, out);
}

export function gemmQ4_0(x: Float32Array, m: number, k: number, w: Q4_0Weight, n: number, out: Float32Array): void {
  bestKernels().gemmQ4_0(x, m, k, w, n, out);
}

export function gemmBf16(x: Float32Array, m: number, k: number, w: Uint16Array, n: number, out: Float32Array): void {
  bestKernels().gemmBf16(x, m, k, w, n, out);
}

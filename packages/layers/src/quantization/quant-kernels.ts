/**
 * Where fast CPU kernels for packed weights plug in (registered per tfjs
 * backend, as tfjs registers kernels by name). A kernel reads the packed
 * bytes directly: `x [m, k]` fp32 row-major → `out [m, n]` = x · Wᵀ. Without
 * one, a method dequantizes per op into a tfjs matmul (every backend).
 */
import type { Q4_0Layout, Q4_0Weight, Q8_0Weight } from '@weft/cpu-kernels';

export interface QuantKernels {
  /**
   * Per format, 'exact': fp32 activations (matches the weight-only references, expected-q*_0.json); 'a8':
   * activations quantized to Q8_0 blocks inside the dot product, as llama.cpp does (expected-q*_0-a8.json).
   */
  readonly activations: Readonly<Record<'q8_0' | 'q4_0' | 'bf16', 'exact' | 'a8'>>;
  /** The Q4_0 layout these kernels read fastest (they read both); absent: 'rows'. */
  readonly q4_0Layout?: Q4_0Layout;
  gemmQ8_0?(x: Float32Array, m: number, k: number, w: Q8_0Weight, n: number, out: Float32Array): void;
  gemmQ4_0?(x: Float32Array, m: number, k: number, w: Q4_0Weight, n: number, out: Float32Array): void;
  /** `w`: bf16 bits `[n, k]` row-major. */
  gemmBf16?(x: Float32Array, m: number, k: number, w: Uint16Array, n: number, out: Float32Array): void;
}

const registry = new Map<string, QuantKernels>();

/** Use `kernels` for packed weights when the tfjs backend is one of `backends` (CPU backends: their tensors are host memory). */
export function registerQuantKernels(backends: readonly string[], kernels: QuantKernels): void {
  for (const b of backends) registry.set(b, kernels);
}

/** Drop the kernels of `backends` (tests compare both paths). */
export function unregisterQuantKernels(backends: readonly string[]): void {
  for (const b of backends) registry.delete(b);
}

export function quantKernelsFor(backend: string): QuantKernels | null {
  return registry.get(backend) ?? null;
}

/**
 * @weft/cpu-kernels as the kernels of packed weights on the CPU backends
 * (tensorflow, wasm: their tensors live in host memory). Its Q8_0 / Q4_0
 * gemms quantize activations to Q8_0 blocks (a8, as llama.cpp); its bf16
 * gemm is weight-only. A rank calls this once, before its first step.
 */
import { cpuKernels, type CpuKernelsOptions, type KernelInfo } from '@weft/cpu-kernels';
import { registerQuantKernels, unregisterQuantKernels } from './quant-kernels.js';

export type { CpuKernelsOptions, KernelInfo } from '@weft/cpu-kernels';

export const CPU_KERNEL_BACKENDS = ['tensorflow', 'wasm'] as const;

/** Register (or with `false`, drop) the CPU kernels for the CPU backends, `true` or options (isa, threads); returns which path runs. */
export function useCpuQuantKernels(on: boolean | CpuKernelsOptions): KernelInfo | null {
  if (on === false) {
    unregisterQuantKernels(CPU_KERNEL_BACKENDS);
    return null;
  }
  const k = cpuKernels(on === true ? {} : on);
  registerQuantKernels(CPU_KERNEL_BACKENDS, {
    activations: { q8_0: k.info.semantics.q8_0, q4_0: k.info.semantics.q4_0, bf16: 'exact' },
    gemmQ8_0: k.gemmQ8_0,
    gemmQ4_0: k.gemmQ4_0,
    gemmBf16: k.gemmBf16,
  });
  return k.info;
}

/**
 * @weft/cpu-kernels as the kernels of packed weights on the CPU backends
 * (tensorflow, wasm: their tensors live in host memory). Its Q8_0 / Q4_0
 * gemms quantize activations to Q8_0 blocks (a8, as llama.cpp); its bf16
 * gemm is weight-only. A rank calls this once, before its first step.
 */
import { cpuKernels, type CpuKernelsOptions, type KernelInfo, type Q4_0Layout } from '@weft/cpu-kernels';
import { quantKernelsFor, registerQuantKernels, unregisterQuantKernels } from './quant-kernels.js';

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
    q4_0Layout: k.info.q4_0Layout,
    gemmQ8_0: k.gemmQ8_0,
    gemmQ4_0: k.gemmQ4_0,
    gemmBf16: k.gemmBf16,
  });
  return k.info;
}

/**
 * The Q4_0 layout for this rank's weights: the one the kernels registered for the CPU backends read fastest (a
 * rank registers them before loading when its linears run them: the host plan and the tfjs path on tensorflow /
 * wasm), else 'rows'. Asked once all rows are in (processWeightsAfterLoading).
 */
export function cpuQ4_0Layout(): Q4_0Layout {
  return CPU_KERNEL_BACKENDS.every((b) => quantKernelsFor(b)?.q4_0Layout === 'tile16') ? 'tile16' : 'rows';
}

export { QK, type Q8_0Weight, type Q4_0Weight, type Q4_0Layout } from './formats.js';
export { repackQ4_0, q4_0Rows, Q4_TILE_ROWS } from './q4-tile.js';
export { fp32ToFp16, fp16ToFp32, fp32ToBf16, bf16ToFp32, toBf16, fromBf16 } from './fp16.js';
export {
  quantizeQ8_0,
  quantizeQ4_0,
  quantizeRowsQ8_0,
  quantizeRowsQ4_0,
  dequantizeQ8_0,
  dequantizeQ4_0,
  dequantizeQ8_0Transposed,
  dequantizeQ4_0Transposed,
  bf16Transposed,
  quantizeActivationsQ8_0,
  roundTripActivationsQ8_0,
  type Q8_0Activations,
} from './quantize.js';
export {
  cpuKernels,
  availableIsas,
  kernelInfo,
  gemmQ8_0,
  gemmQ4_0,
  gemmBf16,
  type CpuKernels,
  type CpuKernelsOptions,
  type KernelInfo,
} from './kernels.js';
export { hostBuffer, hasHugePages, setHugePagesDefault, HUGE_PAGE_BYTES, type HostBufferOptions } from './host-memory.js';
export {
  planKernels,
  ATTN_SEQ_FIELDS,
  type PlanKernels,
  type View,
  type HostMatrix,
  type EmbedTable,
  type PagedAttentionArgs,
} from './plan-ops.js';

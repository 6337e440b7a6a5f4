/**
 * Packed weights through the engine: with Q4_0 / Q8_0 / bf16 weights a
 * request gives the same tokens and logits alone, batched, joined mid-flight,
 * chunked, preempted and prefix-cached.
 * - dequantize per op (cpuKernels false) and bf16 (weight-only kernel): within 1e-5, as fp32;
 * - Q8_0/Q4_0 CPU kernels (a8): a row's result does not depend on its batch inside the kernel, but the
 *   ~1e-7 differences of the attention paths (chunked, batched) can move an activation across a Q8_0
 *   rounding boundary, which moves logits by up to ~1e-2 (the a8 references' own scale): same tokens,
 *   logits within 5e-2.
 */
import { batchingSuite } from '../test-support/batching-cases.js';

batchingSuite('llama-tiny', [
  { label: 'int4 tp1', tp: 1, quantization: 'int4', logitsTol: 5e-2 },
  { label: 'int8 tp2 (dequantize per op)', tp: 2, quantization: 'int8', cpuKernels: false },
]);
batchingSuite('llama-bf16', [{ label: 'bfloat16 pp2', pp: 2, dtype: 'bfloat16' }]);
batchingSuite('deepseek-v3-tiny', [{ label: 'int8 tp2 ep', tp: 2, enableExpertParallel: true, quantization: 'int8', logitsTol: 5e-2 }]);

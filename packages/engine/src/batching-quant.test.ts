/**
 * Packed weights through the engine: with Q4_0 / Q8_0 / bf16 weights a
 * request gives the same tokens and logits alone, batched, joined mid-flight,
 * chunked, preempted and prefix-cached.
 * - dequantize per op (cpuKernels false) and bf16 (weight-only kernel): within 1e-5, as fp32;
 * - Q8_0/Q4_0 CPU kernels (a8, the device plan's host executor): the ~1e-7 differences between paths
 *   (chunked, batched attention; the avx512 kernels sum a batch of ≥ 8 rows in another order than a smaller
 *   one) can move an activation across a Q8_0 rounding boundary (in DeepSeek also a routing choice), which
 *   moves logits by a few 1e-2 (DeepSeek int8: rel L2 1.8e-2 alone vs chunked, on the tfjs path too): same
 *   tokens, each path within the a8 bound of HF, so paths within twice it of each other (rel L2 ≤ 3e-2).
 */
import { batchingSuite } from '../test-support/batching-cases.js';

batchingSuite('llama-tiny', [
  { label: 'int4 tp1', tp: 1, quantization: 'int4', a8: true, stepPath: 'plan (host)' },
  { label: 'int8 tp2 (dequantize per op)', tp: 2, quantization: 'int8', cpuKernels: false },
]);
batchingSuite('llama-bf16', [{ label: 'bfloat16 pp2', pp: 2, dtype: 'bfloat16' }]);
batchingSuite('deepseek-v3-tiny', [{ label: 'int8 tp2 ep', tp: 2, enableExpertParallel: true, quantization: 'int8', a8: true, stepPath: 'plan (host)' }]);

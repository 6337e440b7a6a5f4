/**
 * Packed weights through the engine: with Q4_0 / Q8_0 / bf16 weights a
 * request gives the same tokens and logits alone, batched, joined mid-flight,
 * chunked, preempted and prefix-cached.
 * - dequantize per op (cpuKernels false) and bf16 (weight-only kernel): within 1e-5, as fp32;
 * - Q8_0/Q4_0 CPU kernels (a8, the device plan's host executor): every kernel path sums each output in one
 *   order whatever its batch (@weft/cpu-kernels' determinism test: bitwise), so alone, batched, chunked,
 *   preempted and prefix-cached give the same tokens and logits within 1e-5, as fp32.
 */
import { batchingSuite } from '../test-support/batching-cases.js';

batchingSuite('llama-tiny', [
  { label: 'int4 tp1', tp: 1, quantization: 'int4', stepPath: 'plan (host)' },
  { label: 'int8 tp2 (dequantize per op)', tp: 2, quantization: 'int8', cpuKernels: false },
]);
batchingSuite('llama-bf16', [{ label: 'bfloat16 pp2', pp: 2, dtype: 'bfloat16' }]);
batchingSuite('deepseek-v3-tiny', [{ label: 'int8 tp2 ep', tp: 2, enableExpertParallel: true, quantization: 'int8', stepPath: 'plan (host)' }]);

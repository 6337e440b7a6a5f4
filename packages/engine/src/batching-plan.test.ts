/**
 * The device plan (host executor) through every engine path: a request gives
 * the same tokens and logits alone, batched, joined mid-flight, chunked,
 * preempted and prefix-cached — fp32 Llama at tp 2 (the all-reduce
 * boundaries), Gemma 2 (sliding windows, soft caps) and DeepSeek V3 (MLA's
 * latent cache, MoE) at tp 1.
 */
import { batchingSuite } from '../test-support/batching-cases.js';

const HOST = 'plan (host)';

batchingSuite('llama-tiny', [{ label: 'device plan tp2', tp: 2, devicePlan: true, stepPath: HOST }]);
batchingSuite('gemma2-tiny', [{ label: 'device plan', devicePlan: true, stepPath: HOST }]);
batchingSuite('deepseek-v3-tiny', [{ label: 'device plan', devicePlan: true, stepPath: HOST }]);

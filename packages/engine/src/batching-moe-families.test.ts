/**
 * Qwen3-MoE and Mixtral through the engine: alone = batched = joined
 * mid-flight = chunked = preempted = prefix-cached, abort and leak checks,
 * bad requests (test-support/batching-cases.ts). Expert parallelism across DP replicas
 * (EP 4, both exchanges; the replicas' loads differ, so the idle one runs
 * dummy batches). Mixtral's sliding window is checked against Hugging Face
 * in moe-family-parity.test.ts (the window code is the dense families').
 */
import { batchingSuite } from '../test-support/batching-cases.js';

batchingSuite('qwen3-moe-tiny', [
  { label: 'tp1', tp: 1 },
  { label: 'dp2 tp2 ep4 (alltoall)', tp: 2, dp: 2, enableExpertParallel: true, moeDispatch: 'alltoall' },
]);
batchingSuite('mixtral-tiny', [{ label: 'dp2 tp2 ep4 (allgather)', tp: 2, dp: 2, enableExpertParallel: true }]);

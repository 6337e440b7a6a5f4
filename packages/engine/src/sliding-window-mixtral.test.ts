/**
 * Mixtral with Mistral's window on every layer (mixtral-swa-tiny, window 8)
 * through the engine: the MoE layers beside windowed attention, blocks behind
 * the window freed, also under expert parallelism across DP replicas (an idle
 * replica runs dummy batches while the other frees). See test-support/sliding-window-cases.ts.
 */
import { slidingWindowSuite } from '../test-support/sliding-window-cases.js';

slidingWindowSuite('mixtral-swa-tiny', {
  window: 8,
  freed: true,
  layouts: [
    { label: 'tp 1', tp: 1 },
    { label: 'dp 2 tp 2 ep 4', tp: 2, dp: 2, enableExpertParallel: true },
  ],
  webgpu: false,
});

/** DeepSeek (MLA's latent cache, paged) through the engine: the same cases as Llama, EP across DP replicas included. */
import { batchingSuite } from '../test-support/batching-cases.js';

batchingSuite('deepseek-v3-tiny', [
  { label: 'tp1', tp: 1 },
  { label: 'tp2', tp: 2 },
  { label: 'pp2', pp: 2 },
  { label: 'tp2 pp2', tp: 2, pp: 2 },
  { label: 'dp2 tp2 ep4', tp: 2, dp: 2, enableExpertParallel: true },
]);

/** Llama through the engine: alone = batched = joined mid-flight = chunked = preempted = prefix-cached, at every layout. */
import { batchingSuite } from '../test-support/batching-cases.js';

batchingSuite('llama-tiny', [
  { label: 'tp1', tp: 1 },
  { label: 'tp2', tp: 2 },
  { label: 'pp2', pp: 2 },
  { label: 'tp2 pp2', tp: 2, pp: 2 },
  { label: 'dp2 tp2', tp: 2, dp: 2 },
]);

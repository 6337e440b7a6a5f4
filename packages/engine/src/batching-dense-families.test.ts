/**
 * The dense families without a window through the engine: alone = batched =
 * joined mid-flight = chunked = preempted = prefix-cached (the Llama suite's
 * cases). Qwen2, Qwen3 and Phi-3 schedule exactly as Llama does, so CI runs
 * the one whose per-token math differs most (Qwen3's q/k norm) at tp 2 × pp 2;
 * `test:full` (WEFT_FULL_MATRIX=1) runs them all at tp 1 and tp 2 × pp 2.
 * The windowed models (Mistral, Gemma 2, Qwen2 with use_sliding_window) run
 * the sliding-window suite (test-support/sliding-window-cases.ts), whose prompts run past
 * the window and whose pools are sized for it.
 */
import { batchingSuite, type Layout } from '../test-support/batching-cases.js';
import { slidingWindowSuite } from '../test-support/sliding-window-cases.js';

const FULL = process.env['WEFT_FULL_MATRIX'] === '1';
const TP2_PP2: Layout = { label: 'tp2 pp2', tp: 2, pp: 2 };

batchingSuite('qwen3-bias-tied', [TP2_PP2]);
if (FULL) {
  for (const f of ['qwen2-tiny', 'qwen3-tiny', 'phi3-tiny', 'phi3-mqa-partial']) batchingSuite(f, [{ label: 'tp1', tp: 1 }, TP2_PP2]);
  // Windows on the layers from max_window_layers 1 on: layer 0 reads every block, so nothing is freed.
  slidingWindowSuite('qwen2-swa-tied', { window: 6, freed: false });
  slidingWindowSuite('gemma2-mqa-untied', { window: 5, freed: false });
}

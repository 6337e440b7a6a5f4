/**
 * The dense families equal Hugging Face on their fixtures: logits within the
 * fixtures' bounds, greedy tokens where the reference margin allows, decode
 * through the paged cache equal to the full-sequence forward.
 * - qwen2-tiny (q/k/v biases), qwen3-tiny (q/k norm, head_dim ≠ hidden/heads),
 *   phi3-tiny (fused qkv_proj / gate_up_proj), gemma2-tiny (sandwich norms,
 *   soft-capping, alternate sliding layers, tied head), mistral-swa-tiny
 *   (window 8 < the 19-token prompt): ../shared/fixtures' dev set;
 * - qwen2-swa-tied (window 6 on the layers from max_window_layers 1 on, tied,
 *   12 heads over 2 KV heads: tp 4 replicates them), phi3-mqa-partial (one KV
 *   head inside the fused qkv_proj, replicated at every tp > 1; partial
 *   rotary 0.5), qwen3-bias-tied (q/k/v/o biases beside q/k norm, head_dim 48,
 *   4 KV heads, tied), gemma2-mqa-untied (one KV head, window 5, other caps):
 *   tools/make_dense_family_fixtures.py.
 *
 * CI (`test`) starts each fixture at tp 2 × pp 2 on wasm and tensorflow (TP
 * sharding, KV replication where tp > KV heads, and a pipeline boundary in one
 * start) and at tp 1 on wasm; qwen2-swa-tied also at tp 4. `test:full`
 * (WEFT_FULL_MATRIX=1) runs tp 1, tp 2, pp 2, tp 2 × pp 2 and tp 4 on both.
 */
import { afterAll, describe, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { loadFixtureCases, parityBackends } from '@weft/layers';
import { expectHfParity } from '../test-support/hf-parity.js';
import { LLM } from './llm.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

type Layout = { tp: number; pp: number };
const FULL = process.env['WEFT_FULL_MATRIX'] === '1';
const ALL: Layout[] = [{ tp: 1, pp: 1 }, { tp: 2, pp: 1 }, { tp: 1, pp: 2 }, { tp: 2, pp: 2 }, { tp: 4, pp: 1 }];
const FIXTURES = ['qwen2-tiny', 'qwen3-tiny', 'phi3-tiny', 'gemma2-tiny', 'mistral-swa-tiny', 'qwen2-swa-tied', 'phi3-mqa-partial', 'qwen3-bias-tied', 'gemma2-mqa-untied'];

function layouts(fixture: string, backend: string): Layout[] {
  if (FULL) return ALL;
  const out: Layout[] = [{ tp: 2, pp: 2 }];
  if (backend === 'wasm') out.unshift({ tp: 1, pp: 1 });
  if (backend === 'wasm' && fixture === 'qwen2-swa-tied') out.push({ tp: 4, pp: 1 });
  return out;
}

describe.each(parityBackends())('on $backend', ({ backend, skip }) => {
  if (skip) {
    it.skip(skip, () => {});
    console.log(skip);
    return;
  }
  describe.each(FIXTURES)('%s matches Hugging Face', (name) => {
    const dir = fixtureDir(name);
    const cases = loadFixtureCases(dir);
    const open: LLM[] = [];
    afterAll(async () => {
      await Promise.all(open.map((l) => l.close()));
    });

    it.each(layouts(name, backend))('tp=$tp pp=$pp', async ({ tp, pp }) => {
      const llm = await LLM.load(dir, { tp, pp, backend });
      open.push(llm);
      await expectHfParity(llm, cases);
      await llm.close();
      open.pop();
    });
  });
});

/**
 * DeepSeek V3 and V2-Lite equal Hugging Face at tp 1, 2, 4; tp 2 with expert
 * parallelism (both dispatch methods); dp 2 × tp 2 with EP 4 serving two
 * different prompts at once; pp 2. Decode through the KV cache equals the
 * full-sequence forward.
 */
import { fileURLToPath } from 'node:url';
import { loadFixtureCases, parityBackends } from '@weft/layers';
import { describe, it } from 'vitest';
import { expectFixtureParity } from './fixture-parity.js';
import { LLM, type LLMOptions } from './llm.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

const LAYOUTS: (LLMOptions & { name: string })[] = [
  { name: 'tp1', tp: 1 },
  { name: 'tp2', tp: 2 },
  { name: 'tp2 full K/V cache', tp: 2, mlaKvCache: 'full' },
  { name: 'tp4', tp: 4 },
  { name: 'tp2 ep (allgather)', tp: 2, enableExpertParallel: true },
  { name: 'tp2 ep (alltoall)', tp: 2, enableExpertParallel: true, moeDispatch: 'alltoall' },
  { name: 'dp2 tp2 ep4', tp: 2, dp: 2, enableExpertParallel: true },
  { name: 'pp2', pp: 2 },
];

// CI: every layout on wasm; on tensorflow (the slower of the two with many rank threads on a 2-core machine)
// each layout once, spread over the fixtures. WEFT_FULL_MATRIX=1 (`npm run test:full`) runs all on both.
const FULL = process.env['WEFT_FULL_MATRIX'] === '1';
const TENSORFLOW_CI: Record<string, string[]> = {
  'deepseek-v3-tiny': ['tp2 full K/V cache', 'dp2 tp2 ep4', 'pp2'],
  'deepseek-v2-lite-tiny': ['tp1', 'tp2 ep (alltoall)'],
  'deepseek-v3-16e-top4': ['tp2', 'tp4', 'tp2 ep (allgather)'],
};

// deepseek-v3-16e-top4 (tools/make_fixtures.py): 16 experts, top-4, n_group 8, topk_group 3, no q_lora, 2 shared, first_k_dense_replace 2.
describe.each(parityBackends())('on $backend', ({ backend, skip }) => {
  if (skip) {
    it.skip(skip, () => {});
    console.log(skip);
    return;
  }
  describe.each(['deepseek-v3-tiny', 'deepseek-v2-lite-tiny', 'deepseek-v3-16e-top4'])('%s matches Hugging Face', (fixture) => {
    const dir = fixtureDir(fixture);
    const cases = loadFixtureCases(dir);

    it.each(LAYOUTS.filter((l) => FULL || backend !== 'tensorflow' || TENSORFLOW_CI[fixture]!.includes(l.name)))('$name', async ({ name: _name, ...opts }) => {
      const llm = await LLM.load(dir, { ...opts, backend });
      try {
        await expectFixtureParity(llm, cases);
      } finally {
        await llm.close();
      }
    });
  });
});

/**
 * DeepSeek V3 and V2-Lite equal Hugging Face at tp 1, 2, 4; tp 2 with expert
 * parallelism (both dispatch methods); dp 2 × tp 2 with EP 4 serving two
 * different prompts at once; pp 2. Decode through the KV cache equals the
 * full-sequence forward.
 */
import { fileURLToPath } from 'node:url';
import { compareLogits, greedyMismatches, loadFixtureCases, parityBackends } from '@weft/layers';
import { describe, expect, it } from 'vitest';
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

    it.each(LAYOUTS)('$name', async ({ name: _name, ...opts }) => {
      const llm = await LLM.load(dir, { ...opts, backend });
      try {
        // Every prompt at once: with dp 2 each replica serves a different one.
        const all = await llm.logitsMany(cases.map((c) => c.input_ids));
        cases.forEach((c, i) => {
          const { maxAbs, relL2 } = compareLogits(all[i]!, c.logits);
          expect(maxAbs, `case ${i} max |ours − HF|`).toBeLessThanOrEqual(1e-3);
          expect(relL2, `case ${i} relative L2`).toBeLessThanOrEqual(1e-4);
        });
        const paths = await llm.logitsMany(cases.map((c) => [...c.input_ids, ...c.greedy.slice(0, -1)]));
        cases.forEach((c, i) => expect(greedyMismatches(paths[i]!.slice(c.input_ids.length - 1), c.greedy), `case ${i} greedy`).toEqual([]));
        // Cached decode of all prompts together (replicas finish at different times: lengths differ).
        const outs = await llm.generate(cases.map((c) => c.input_ids), { maxTokens: 5, returnLogits: true, ignoreEos: true });
        const full = await llm.logitsMany(outs.map((o) => [...o.promptTokenIds, ...o.tokenIds.slice(0, -1)]));
        outs.forEach((o, i) =>
          o.logits!.forEach((row, t) => {
            const ref = full[i]![o.promptTokenIds.length - 1 + t]!;
            expect(Math.max(...Array.from(row, (v, j) => Math.abs(v - ref[j]!))), `case ${i} cached step ${t}`).toBeLessThan(1e-4);
          }),
        );
      } finally {
        await llm.close();
      }
    });
  });
});

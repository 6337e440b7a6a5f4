/**
 * Qwen3-MoE and Mixtral equal Hugging Face at tp 1, tp 2, pp 2, tp 2 × pp 2,
 * expert parallelism under both token exchanges (tp 2 → EP 2; dp 2 × tp 2 →
 * EP 4, the replicas serving different prompts at once), on every parity
 * backend. The extra fixtures (tools/make_moe_fixtures.py) have expert counts
 * that EP 2 and EP 4 do not divide, a KV head that tp 2 replicates, dense
 * layers among the sparse ones and a tied head. Cached decode equals the
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
  { name: 'pp2', pp: 2 },
  { name: 'tp2 pp2', tp: 2, pp: 2 },
  { name: 'tp2 ep (allgather)', tp: 2, enableExpertParallel: true },
  { name: 'tp2 ep (alltoall)', tp: 2, enableExpertParallel: true, moeDispatch: 'alltoall' },
  { name: 'dp2 tp2 ep4 (allgather)', tp: 2, dp: 2, enableExpertParallel: true },
  { name: 'dp2 tp2 ep4 (alltoall)', tp: 2, dp: 2, enableExpertParallel: true, moeDispatch: 'alltoall' },
];

export const MOE_FIXTURES = ['mixtral-tiny', 'mixtral-3e'];

describe.each(parityBackends())('on $backend', ({ backend, skip }) => {
  if (skip) {
    it.skip(skip, () => {});
    console.log(skip);
    return;
  }
  describe.each(MOE_FIXTURES)('%s matches Hugging Face', (fixture) => {
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

/**
 * Data parallelism with expert parallelism spanning the replicas (dp 2 × tp 2,
 * EP 4): when one replica runs out of work it runs dummy batches so the expert
 * collectives stay in step, and the other replica's results are unchanged.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LLM } from './llm.js';

const dir = fileURLToPath(new URL('../../../fixtures/deepseek-v3-tiny', import.meta.url));

describe('dp 2 × tp 2 with EP 4', () => {
  it('one replica finishing early neither hangs nor corrupts the other', async () => {
    const prompts = [
      [5, 17, 300, 42, 7, 99],
      [11, 2, 250],
      [400, 401, 402, 403],
    ];
    const solo = await LLM.load(dir, { tp: 1 });
    const want = await solo.generate(prompts, { maxTokens: 8, ignoreEos: true, returnLogits: true });
    await solo.close();

    const llm = await LLM.load(dir, { tp: 2, dp: 2, enableExpertParallel: true, trace: true, timeoutMs: 20_000 });
    try {
      // Prompts 0 and 2 go to replica 0, prompt 1 to replica 1, which stops after 2 tokens.
      const got = await llm.generate(prompts, [
        { maxTokens: 8, ignoreEos: true, returnLogits: true },
        { maxTokens: 2, ignoreEos: true, returnLogits: true },
        { maxTokens: 8, ignoreEos: true, returnLogits: true },
      ]);
      expect(got.map((o) => o.tokenIds.length)).toEqual([8, 2, 8]);
      got.forEach((o, i) => {
        expect(o.tokenIds, `prompt ${i}`).toEqual(want[i]!.tokenIds.slice(0, o.tokenIds.length));
        o.logits!.forEach((row, t) => {
          const ref = want[i]!.logits![t]!;
          expect(Math.max(...Array.from(row, (v, j) => Math.abs(v - ref[j]!))), `prompt ${i} step ${t}`).toBeLessThan(1e-4);
        });
      });
      // Replica 1 really ran dummy batches while replica 0 finished.
      const dummies = llm.trace().traceEvents.filter((e) => e.name === 'dummy batch');
      expect(dummies.length).toBeGreaterThan(0);
    } finally {
      await llm.close();
    }
  });
});

/** A rank that dies mid-step takes the engine down cleanly: every in-flight request rejects naming the rank, health says dead, nothing hangs. */
import { fileURLToPath } from 'node:url';
import { spawnRanks } from '@weft/comm';
import { describe, expect, it } from 'vitest';
import { EngineDeadError } from './errors.js';
import { LLM } from './llm.js';
import { FAILING_RANK, POISON } from './test-entries/failing-rank.js';

const dir = fileURLToPath(new URL('../../../fixtures/llama-tiny', import.meta.url));
const entry = new URL('./test-entries/failing-rank.ts', import.meta.url);

describe('a rank failure', () => {
  it('rejects every in-flight request with EngineDeadError naming the rank; later calls fail at once', async () => {
    const llm = await LLM.load(dir, { tp: 2, timeoutMs: 5_000, spawn: (o) => spawnRanks({ ...o, entry }) });
    try {
      expect((await llm.generate([[5, 6, 7]], { maxTokens: 2 }))[0]!.tokenIds).toHaveLength(2);
      const running = llm.generate([[5, 6, 7]], { maxTokens: 200, ignoreEos: true });
      const events: unknown[] = [];
      const streaming = (async () => {
        for await (const ev of llm.stream([8, 9], { maxTokens: 200, ignoreEos: true })) events.push(ev);
      })();
      await new Promise((r) => setTimeout(r, 200));
      const poisoned = llm.generate([[1, POISON, 2]], { maxTokens: 2 });
      const t0 = Date.now();
      for (const p of [running, streaming, poisoned]) {
        const err = await p.then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(EngineDeadError);
        expect((err as Error).message).toMatch(new RegExp(`rank ${FAILING_RANK} \\(tp 1, pp 0, dp 0\\).*deliberate failure in forward`));
      }
      expect(Date.now() - t0, 'ms until every request rejected').toBeLessThan(5_000);
      expect(llm.health()).toMatchObject({ ok: false, error: expect.stringMatching(/rank 1/) });
      await expect(llm.generate([[1, 2]])).rejects.toBeInstanceOf(EngineDeadError);
      await expect(llm.logits([1, 2])).rejects.toBeInstanceOf(EngineDeadError);
    } finally {
      const t1 = Date.now();
      await llm.close();
      expect(Date.now() - t1, 'ms to close').toBeLessThan(10_000);
    }
  });
});

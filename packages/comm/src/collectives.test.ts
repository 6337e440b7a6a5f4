import { describe, expect, it } from 'vitest';
import { liveRankWorkers, runRanks } from './index.js';
import type { CollectivesReport } from './test-entries/collectives.js';

const entry = new URL('./test-entries/collectives.ts', import.meta.url);

describe('collectives on worker threads against the dense result', () => {
  // A 4 KiB slot forces every larger tensor through many rounds.
  for (const ws of [1, 2, 3, 4, 8]) {
    it(`world size ${ws}`, async () => {
      const reports = (await runRanks({ parallel: { tp: ws }, entry, backend: 'cpu', scratchBytes: 4096, timeoutMs: 30_000 })) as CollectivesReport[];
      expect(reports).toHaveLength(ws);
      for (const r of reports) {
        expect(r.checks).toBeGreaterThan(50);
        expect(r.tensorsAfter).toBe(r.tensorsBefore);
      }
      expect(new Set(reports.map((r) => r.floatBits)).size).toBe(1);
      expect(liveRankWorkers()).toBe(0);
    });
  }

  it('world size 4 with the default 4 MiB slot', async () => {
    const reports = (await runRanks({ parallel: { tp: 4 }, entry, backend: 'cpu' })) as CollectivesReport[];
    for (const r of reports) expect(r.tensorsAfter).toBe(r.tensorsBefore);
  });
});

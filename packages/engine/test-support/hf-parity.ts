/**
 * The parity checks every model's HF suite makes on one started LLM:
 * logits within the fixtures' bounds (max |Δ| ≤ 1e-3, relative L2 ≤ 1e-4),
 * greedy tokens under teacher forcing where the reference margin allows,
 * and decode through the paged KV cache equal to the full-sequence forward.
 */
import { expect } from 'vitest';
import { compareLogits, greedyMismatches, type FixtureCase } from '@weft/layers';
import type { LLM } from '../src/llm.js';

export async function expectHfParity(llm: LLM, cases: FixtureCase[], decodeSteps = 6): Promise<void> {
  for (const c of cases) {
    const rows = await llm.logits(c.input_ids);
    const { maxAbs, relL2 } = compareLogits(rows, c.logits);
    expect(maxAbs, 'max |ours − HF|').toBeLessThanOrEqual(1e-3);
    expect(relL2, 'relative L2').toBeLessThanOrEqual(1e-4);

    // Greedy with teacher forcing: the reference path, one forward.
    const path = [...c.input_ids, ...c.greedy.slice(0, -1)];
    const pathLogits = await llm.logits(path);
    expect(greedyMismatches(pathLogits.slice(c.input_ids.length - 1), c.greedy), 'greedy steps that differ').toEqual([]);

    // Decode through the KV cache gives the same logits as the full-sequence forward.
    const [out] = await llm.generate([c.input_ids], { maxTokens: decodeSteps, returnLogits: true, ignoreEos: true });
    const full = await llm.logits([...c.input_ids, ...out!.tokenIds.slice(0, -1)]);
    out!.logits!.forEach((row, i) => {
      const ref = full[c.input_ids.length - 1 + i]!;
      const err = Math.max(...Array.from(row, (v, j) => Math.abs(v - ref[j]!)));
      expect(err, `cached decode step ${i}`).toBeLessThan(1e-4);
    });
  }
}

/**
 * Test support (not exported): one engine against a fixture's Hugging Face
 * cases. Every prompt at once (with dp each replica serves its own): logits
 * within the bound, greedy tokens equal with teacher forcing wherever the
 * reference margin allows, and cached decode equal to the full-sequence
 * forward (replicas finish at different times: lengths differ).
 */
import { compareLogits, greedyMismatches, type FixtureCase } from '@weft/layers';
import { expect } from 'vitest';
import type { LLM } from './llm.js';

export interface ParityBound {
  maxAbs?: number;
  relL2: number;
}

/** The fixture bound (fixtures/README.md). */
export const FIXTURE_BOUND: ParityBound = { maxAbs: 1e-3, relL2: 1e-4 };

/** Checks `llm` against `cases`; returns the worst figures seen (for the log). */
export async function expectFixtureParity(llm: LLM, cases: FixtureCase[], bound: ParityBound = FIXTURE_BOUND, decodeSteps = 5): Promise<{ maxAbs: number; relL2: number }> {
  const worst = { maxAbs: 0, relL2: 0 };
  const all = await llm.logitsMany(cases.map((c) => c.input_ids));
  cases.forEach((c, i) => {
    const { maxAbs, relL2 } = compareLogits(all[i]!, c.logits);
    worst.maxAbs = Math.max(worst.maxAbs, maxAbs);
    worst.relL2 = Math.max(worst.relL2, relL2);
    if (bound.maxAbs !== undefined) expect(maxAbs, `case ${i} max |ours − HF|`).toBeLessThanOrEqual(bound.maxAbs);
    expect(relL2, `case ${i} relative L2`).toBeLessThanOrEqual(bound.relL2);
  });
  // Teacher-forced greedy is only meaningful at the fixture bound: looser references move the margins.
  if (bound.maxAbs !== undefined) {
    const paths = await llm.logitsMany(cases.map((c) => [...c.input_ids, ...c.greedy.slice(0, -1)]));
    cases.forEach((c, i) => expect(greedyMismatches(paths[i]!.slice(c.input_ids.length - 1), c.greedy), `case ${i} greedy`).toEqual([]));
  }
  const outs = await llm.generate(cases.map((c) => c.input_ids), { maxTokens: decodeSteps, returnLogits: true, ignoreEos: true });
  const full = await llm.logitsMany(outs.map((o) => [...o.promptTokenIds, ...o.tokenIds.slice(0, -1)]));
  outs.forEach((o, i) =>
    o.logits!.forEach((row, t) => {
      const ref = full[i]![o.promptTokenIds.length - 1 + t]!;
      if (bound.maxAbs !== undefined) {
        expect(Math.max(...Array.from(row, (v, j) => Math.abs(v - ref[j]!))), `case ${i} cached step ${t}`).toBeLessThan(1e-4);
      } else {
        // Activations rounded to Q8_0 (a8): a 1-ulp difference between the step's path (the device plan) and the
        // full forward's can move one activation to the neighbouring quantum, ~1e-2 on the logits: the a8 bound.
        expect(compareLogits([row], ref).relL2, `case ${i} cached step ${t} rel L2`).toBeLessThanOrEqual(bound.relL2);
      }
    }),
  );
  return worst;
}

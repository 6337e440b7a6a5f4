/**
 * The definition of right: logits equal Hugging Face transformers on the
 * fixtures at every layout (tp 1, 2, 4; pp 2; tp 2 × pp 2), greedy tokens
 * equal where the reference margin allows, and decode through the KV cache
 * equal to the full-sequence forward.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { LLM } from './llm.js';
import { compareLogits, fixtureDir, loadCases } from './fixture.js';
import type { LLMEngine } from '@weft/layers';

const LAYOUTS = [
  { tp: 1, pp: 1 },
  { tp: 2, pp: 1 },
  { tp: 4, pp: 1 },
  { tp: 1, pp: 2 },
  { tp: 2, pp: 2 },
];

const argmax = (r: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < r.length; i++) if (r[i]! > r[b]!) b = i;
  return b;
};

describe.each(['llama-tiny', 'llama-bf16'])('%s matches Hugging Face', (name) => {
  const dir = fixtureDir(name);
  const cases = loadCases(dir);
  const open: LLMEngine[] = [];
  afterAll(async () => {
    await Promise.all(open.map((l) => l.close()));
  });

  it.each(LAYOUTS)('tp=$tp pp=$pp', async ({ tp, pp }) => {
    const llm = await LLM.load(dir, { tp, pp, backend: 'wasm' });
    open.push(llm);
    for (const c of cases) {
      const rows = await llm.logits(c.input_ids);
      const { maxAbs, relL2 } = compareLogits(rows, c.logits);
      expect(maxAbs, 'max |ours − HF|').toBeLessThanOrEqual(1e-3);
      expect(relL2, 'relative L2').toBeLessThanOrEqual(1e-4);

      // Greedy with teacher forcing: the reference path, one forward.
      const path = [...c.input_ids, ...c.greedy.slice(0, -1)];
      const pathLogits = await llm.logits(path);
      c.greedy.forEach((tok, i) => {
        const row = pathLogits[c.input_ids.length - 1 + i]!;
        const sorted = Array.from(row).sort((a, b) => b - a);
        if (sorted[0]! - sorted[1]! >= 2e-3) expect(argmax(row), `greedy step ${i}`).toBe(tok);
      });

      // Decode through the KV cache gives the same logits as the full-sequence forward.
      const [out] = await llm.generate([c.input_ids], { maxTokens: 6, returnLogits: true, ignoreEos: true });
      const full = await llm.logits([...c.input_ids, ...out!.tokenIds.slice(0, -1)]);
      out!.logits!.forEach((row, i) => {
        const ref = full[c.input_ids.length - 1 + i]!;
        const err = Math.max(...Array.from(row, (v, j) => Math.abs(v - ref[j]!)));
        expect(err, `cached decode step ${i}`).toBeLessThan(1e-4);
      });
    }
    await llm.close();
    open.pop();
  });
});

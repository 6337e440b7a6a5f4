/** Tensors do not leak across steps: live tensor counts on the ranks stay flat through decode and across requests. */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LLM } from './llm.js';

const dir = fileURLToPath(new URL('../../../fixtures/llama-tiny', import.meta.url));

describe('tensor lifetimes', () => {
  it.each([{ tp: 2, pp: 2 }])('tp=$tp pp=$pp: flat through decode, back to the start once sequences are freed', async (layout) => {
    const llm = await LLM.load(dir, layout);
    try {
      await llm.generate([[1, 2, 3, 4], [5, 6]], { maxTokens: 6, ignoreEos: true });
      const first = [...llm.tensorCounts];
      // After the prefill step the KV cache holds a fixed number of tensors per sequence and layer.
      expect(new Set(first.slice(1)).size, `counts ${first.join(',')}`).toBe(1);
      await llm.generate([[1, 2, 3, 4], [5, 6]], { maxTokens: 6, ignoreEos: true });
      expect(llm.tensorCounts.slice(first.length)).toEqual(first);
      await llm.logits([1, 2, 3]);
      // A full-sequence forward keeps nothing: fewer live tensors than while two sequences were cached.
      expect(llm.tensorCounts.at(-1)!).toBeLessThan(first[0]!);
    } finally {
      await llm.close();
    }
  });
});

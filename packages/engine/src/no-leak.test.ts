/** Tensors do not leak across steps: with the KV cache in preallocated pools, live tensor counts on the ranks stay flat through prefill, decode and across requests. */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LLM } from './llm.js';

const dir = fileURLToPath(new URL('../../../fixtures/llama-tiny', import.meta.url));

describe('tensor lifetimes', () => {
  it.each([{ tp: 2, pp: 2 }])('tp=$tp pp=$pp: flat through every step and request', async (layout) => {
    const llm = await LLM.load(dir, layout);
    try {
      await llm.generate([[1, 2, 3, 4], [5, 6]], { maxTokens: 6, ignoreEos: true });
      const first = [...llm.tensorCounts];
      expect(new Set(first).size, `counts ${first.join(',')}`).toBe(1);
      await llm.generate([[1, 2, 3, 4], [5, 6], [7, 8, 9]], { maxTokens: 6, ignoreEos: true });
      await llm.logits([1, 2, 3]);
      expect(new Set(llm.tensorCounts).size, `counts ${llm.tensorCounts.join(',')}`).toBe(1);
      expect(llm.stats().kvBlocksUsed).toBe(0);
    } finally {
      await llm.close();
    }
  });
});

/**
 * Sliding-window attention through the engine on mistral-swa-tiny (window 8,
 * every layer windowed): see test-support/sliding-window-cases.ts. At tp 1, tp 2, pp 2 and dp 2,
 * on wasm and tensorflow; tp 1 on webgpu. Plus the pool sizing a window allows.
 */
import { greedyMismatches } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import { LLM } from './llm.js';
import { fixtureDir, prompts, slidingWindowSuite } from '../test-support/sliding-window-cases.js';

const dir = fixtureDir('mistral-swa-tiny');
const BLOCK = 4;

slidingWindowSuite('mistral-swa-tiny', { window: 8, freed: true });
// A window that is no multiple of the block size: windows start and blocks are freed mid-block.
slidingWindowSuite('mistral-swa-tiny', { window: 8, freed: true, blockSize: 3, layouts: [{ label: 'tp 1, blocks of 3', tp: 1 }], webgpu: false });

describe('mistral-swa-tiny KV pool sizing', () => {
  it('caps the pool at the blocks maxNumSeqs windowed sequences hold, and serves requests longer than the pool', async () => {
    const llm = await LLM.load(dir, { backend: 'wasm', blockSize: BLOCK, maxNumSeqs: 4, maxNumBatchedTokens: 16, timeoutMs: 60_000 });
    try {
      // Per sequence: the window of a step's first token and the step's 16 tokens: ⌊(16 + 8 − 2) / 4⌋ + 2 = 7 blocks, not 512 / 4.
      expect(llm.numKvBlocks).toBe(4 * 7);
      const p = prompts(llm.vocabSize)[4]!;
      const long = [...p, ...p, ...p, ...p, ...p].slice(0, 200);
      const outs = await llm.generate([long, long.slice(0, 150), p], { maxTokens: 100, ignoreEos: true });
      expect(outs.map((o) => o.tokenIds.length)).toEqual([100, 100, 100]);
      expect(llm.stats().kvBlocksUsed).toBe(0);
      // Each greedy token is the full-sequence forward's argmax (300 tokens through a 112-slot pool).
      for (const [i, prompt] of [long, long.slice(0, 150), p].entries()) {
        const full = await llm.logits([...prompt, ...outs[i]!.tokenIds.slice(0, -1)]);
        expect(greedyMismatches(full.slice(prompt.length - 1), outs[i]!.tokenIds), `request ${i}: steps off the full forward`).toEqual([]);
      }
    } finally {
      await llm.close();
    }
  }, 120_000);
});

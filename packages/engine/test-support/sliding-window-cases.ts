/**
 * Test support (not exported): sliding-window attention through the engine
 * on a fixture whose prompts run past its window (blocks of 4 unless told). Logits equal
 * Hugging Face; decoding through the paged cache equals the full-sequence
 * forward; alone = batched = chunked = prefix-cached = preempted. When every
 * layer is windowed (`freed`), blocks behind the window are freed: a request
 * holds at most the window's blocks and a pool far smaller than its history
 * serves it. Otherwise (Gemma 2's global layers) every block is kept and such
 * a request is refused up front, naming the pool.
 */
import { fileURLToPath } from 'node:url';
import { compareLogits, greedyMismatches, loadFixtureCases, parityBackends } from '@weft/layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LLM, type GenerateOutput, type LLMOptions } from '../src/llm.js';

const TOL = 1e-5;
const GEN = { maxTokens: 12, ignoreEos: true, returnLogits: true } as const;

/** Deterministic prompts of token ids in [3, vocab), from 3 tokens (inside the window) to 41. */
export function prompts(vocab: number): number[][] {
  let s = 777;
  const next = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return 3 + (s % (vocab - 3));
  };
  return [3, 9, 17, 26, 41].map((n) => Array.from({ length: n }, next));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let j = 0; j < a.length; j++) d = Math.max(d, Math.abs(a[j]! - b[j]!));
  return d;
}

function expectSame(got: GenerateOutput, want: GenerateOutput, what: string): void {
  expect(got.tokenIds, `${what}: tokens`).toEqual(want.tokenIds);
  got.logits!.forEach((row, t) => expect(maxDiff(row, want.logits![t]!), `${what}: logits of step ${t}`).toBeLessThanOrEqual(TOL));
}

export interface SlidingWindowSuiteOptions {
  /** The fixture's sliding_window. */
  window: number;
  /** Every layer windowed: the engine frees blocks behind the window. */
  freed: boolean;
  /** Layouts on wasm and tensorflow (default tp 1, tp 2, pp 2, dp 2). */
  layouts?: Layout[];
  /** Also tp 1 on webgpu (default true). */
  webgpu?: boolean;
  /** Tokens per KV block (default 4). */
  blockSize?: number;
}

export type Layout = LLMOptions & { label: string };

const LAYOUTS: Layout[] = [
  { label: 'tp 1', tp: 1 },
  { label: 'tp 2', tp: 2 },
  // Two virtual engines over one block pool: one frees while the other's step is in flight.
  { label: 'pp 2', pp: 2 },
  // Each replica's scheduler frees its own requests' blocks.
  { label: 'dp 2', dp: 2 },
];

export function fixtureDir(fixture: string): string {
  return fileURLToPath(new URL(`../../../fixtures/${fixture}`, import.meta.url));
}

export function slidingWindowSuite(fixture: string, { window: WINDOW, freed, layouts = LAYOUTS, webgpu = true, blockSize: BLOCK = 4 }: SlidingWindowSuiteOptions): void {
  const dir = fixtureDir(fixture);
  /** Blocks a request holds between steps when blocks are freed: the window of its next token. */
  const HELD = Math.ceil((WINDOW - 1) / BLOCK) + 1;
  /** webgpu: the WebGPU step refuses sliding windows, so the tfjs runner serves it, with weft's attention kernel (the window in the shader). */
  const BACKENDS = [
    ...parityBackends().map((b) => ({ ...b, layouts })),
    ...(webgpu ? [{ backend: 'webgpu' as const, skip: null, layouts: [LAYOUTS[0]!] }] : []),
  ];

  describe.each(BACKENDS)(`${fixture} on $backend`, ({ backend, skip, layouts }) => {
    if (skip) {
      it.skip(skip, () => {});
      return;
    }
    describe.each(layouts)('$label', ({ label: _label, ...layout }) => {
      let llm: LLM;
      let ps: number[][];
      const alone: GenerateOutput[] = [];

      beforeAll(async () => {
        llm = await LLM.load(dir, { ...layout, backend, blockSize: BLOCK, timeoutMs: 60_000 });
        ps = prompts(llm.vocabSize);
        await llm.resetScheduler({ enablePrefixCaching: false });
        for (const p of ps) alone.push((await llm.generate([p], GEN))[0]!);
      }, 300_000);
      afterAll(async () => {
        await llm?.close();
      });

      it('logits equal Hugging Face on prompts shorter and longer than the window; greedy with teacher forcing', async () => {
        const cases = loadFixtureCases(dir);
        expect(Math.max(...cases.map((c) => c.input_ids.length))).toBeGreaterThan(WINDOW);
        for (const c of cases) {
          const { maxAbs, relL2 } = compareLogits(await llm.logits(c.input_ids), c.logits);
          expect(maxAbs, 'max |ours − HF|').toBeLessThanOrEqual(1e-3);
          expect(relL2, 'relative L2').toBeLessThanOrEqual(1e-4);
          const path = await llm.logits([...c.input_ids, ...c.greedy.slice(0, -1)]);
          expect(greedyMismatches(path.slice(c.input_ids.length - 1), c.greedy), 'greedy steps that differ').toEqual([]);
        }
      });

      it(`decoding through the cache (${freed ? 'blocks behind the window freed' : 'every block kept'}) equals the full-sequence forward`, async () => {
        for (const [i, p] of ps.entries()) {
          const out = alone[i]!;
          const full = await llm.logits([...p, ...out.tokenIds.slice(0, -1)]);
          out.logits!.forEach((row, t) => expect(maxDiff(row, full[p.length - 1 + t]!), `prompt ${i} step ${t}`).toBeLessThanOrEqual(1e-4));
          // Greedy: each token is the argmax of its row.
          out.logits!.forEach((row, t) => expect(row.indexOf(Math.max(...row)), `prompt ${i} step ${t}`).toBe(out.tokenIds[t]));
        }
        // And the fixture's own greedy continuation of its long prompt.
        const c = loadFixtureCases(dir).at(-1)!;
        const [g] = await llm.generate([c.input_ids], { maxTokens: c.greedy.length, ignoreEos: true });
        expect(g!.tokenIds).toEqual(c.greedy);
      });

      it('batched = alone', async () => {
        await llm.resetScheduler({ enablePrefixCaching: false });
        const outs = await llm.generate(ps, GEN);
        outs.forEach((o, i) => expectSame(o, alone[i]!, `prompt ${i}`));
        expect(llm.stats().kvBlocksUsed).toBe(0);
      });

      it('chunked prefill under a budget of 5 = alone', async () => {
        await llm.resetScheduler({ enablePrefixCaching: false, maxNumBatchedTokens: 5 });
        const outs = await llm.generate([ps[4]!, ps[2]!], GEN);
        expectSame(outs[0]!, alone[4]!, 'chunked 41');
        expectSame(outs[1]!, alone[2]!, 'chunked 17');
      });

      it('prefix-cached = alone', async () => {
        await llm.resetScheduler({ enablePrefixCaching: true });
        await llm.generate([ps[4]!], GEN);
        const hits = llm.stats().prefixCacheHits;
        const [again] = await llm.generate([ps[4]!], GEN);
        // 41 tokens: the full blocks of the first 40 (the last token is always recomputed) are served from the cache.
        expect(llm.stats().prefixCacheHits - hits, 'prompt tokens served from the cache').toBe(Math.floor(40 / BLOCK) * BLOCK);
        expectSame(again!, alone[4]!, 'cached prompt');
        const both = await llm.generate([ps[4]!, ps[4]!, ps[3]!], GEN);
        both.slice(0, 2).forEach((o) => expectSame(o, alone[4]!, 'cached prompt, batched'));
        expectSame(both[2]!, alone[3]!, 'uncached beside them');
      });

      it('preempted and recomputed under a tiny pool = alone', async () => {
        // Freed: a request holds at most the window and a step's chunk (5 blocks of 4 for window 8); kept: the longest request's whole history.
        await llm.resetScheduler({ enablePrefixCaching: false, numKvBlocks: freed ? 6 : Math.ceil((41 + GEN.maxTokens) / BLOCK), maxNumBatchedTokens: 8 });
        const before = llm.stats().preemptions;
        const idx = [4, 3, 2, 1];
        const outs = await llm.generate(idx.map((i) => ps[i]!), GEN);
        expect(llm.stats().preemptions - before, 'preemptions').toBeGreaterThan(0);
        outs.forEach((o, k) => expectSame(o, alone[idx[k]!]!, `prompt ${idx[k]}`));
        expect(llm.stats().kvBlocksUsed).toBe(0);
      });

      it('a request holds at most the window of blocks; a pool smaller than its history serves it; all blocks return', async () => {
        // 6 blocks (24 slots of 4) for 41 + 60 tokens: only possible when blocks behind the window are freed.
        await llm.resetScheduler({ enablePrefixCaching: false, numKvBlocks: 6, maxNumBatchedTokens: 8 });
        if (!freed) {
          // A layer with global attention reads the whole history: the request is refused up front, naming the pool.
          await expect(llm.generate([ps[4]!], { maxTokens: 60, ignoreEos: true })).rejects.toThrow(new RegExp(`101 tokens need ${Math.ceil(101 / BLOCK)} KV blocks of ${BLOCK}, more than the whole pool \\(numKvBlocks 6\\)`));
          return;
        }
        let most = 0;
        const tokens: number[] = [];
        for await (const ev of llm.stream(ps[4]!, { maxTokens: 60, ignoreEos: true })) {
          tokens.push(...ev.tokenIds);
          most = Math.max(most, llm.stats().kvBlocksUsed);
        }
        expect(tokens).toHaveLength(60);
        expect(most, 'blocks held while decoding').toBeLessThanOrEqual(HELD);
        expect(tokens.slice(0, GEN.maxTokens)).toEqual(alone[4]!.tokenIds);
        expect(llm.stats().kvBlocksUsed).toBe(0);
      });
    });
  });
}

/**
 * The KV-cache manager and scheduler with a sliding window (vLLM's
 * SlidingWindowManager): blocks behind the window are freed, the block table
 * keeps its positions (−1 where freed), prefix-cache hits need only the
 * window's blocks. The workload test plays the ranks' cache: every step
 * writes each new token's identity (a hash of its whole prefix) into its
 * slot, then checks that every key each query's window reads through the
 * block table holds exactly the token of that position of that request:
 * what attention would read, through chunked prefill, prefix-cache hits,
 * preemption and recompute.
 */
import { describe, expect, it } from 'vitest';
import { KVCacheManager } from './kv-cache-manager.js';
import { Request } from './request.js';
import { resolveSamplingParams } from './sampling-params.js';
import { Scheduler, type SchedulerConfig } from './scheduler.js';

let nextId = 1;
const range = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);
const req = (tokens: number[], maxTokens = 4) => new Request(nextId++, tokens, resolveSamplingParams({ maxTokens }));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Identity of position p of a token sequence: a hash of tokens 0..p (what K/V at p depends on). */
function prefixIds(tokens: number[]): number[] {
  const out: number[] = [];
  let h = 0x811c9dc5;
  for (const t of tokens) {
    h = Math.imul(h ^ t, 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
    out.push(h);
  }
  return out;
}

describe('KVCacheManager with a sliding window', () => {
  it('frees the blocks behind the window of the next token; the table keeps its positions', () => {
    const kv = new KVCacheManager({ numBlocks: 8, blockSize: 4, enablePrefixCaching: false, slidingWindow: 6 });
    const r = req(range(0, 14), 40);
    expect(kv.allocateSlots(r, 14)).toBe(true);
    expect(kv.numHeldBlocks(r.seqId)).toBe(4);
    r.numComputedTokens = 14;
    // The next token (position 14) sees 9 .. 14: blocks 2 and 3; blocks 0 and 1 go.
    kv.removeSkippedBlocks(r, 14);
    expect(kv.blockTable(r.seqId)).toEqual([-1, -1, 2, 3]);
    expect(kv.usedBlocks).toBe(2);
    for (let c = 14; c < 40; c++) {
      r.appendOutput(1);
      expect(kv.allocateSlots(r, 1)).toBe(true);
      r.numComputedTokens = c + 1;
      // A token at c sees c − 5 .. c: at most ceil(5 / 4) + 1 = 3 blocks.
      expect(kv.numHeldBlocks(r.seqId)).toBeLessThanOrEqual(3);
    }
    expect(kv.blockTable(r.seqId)).toHaveLength(10);
    expect(kv.blockTable(r.seqId).slice(0, 7).every((b) => b === -1)).toBe(true);
    kv.free(r);
    expect(kv.usedBlocks).toBe(0);
  });

  it('a prefix hit needs only the blocks inside the window of its first new token, found from the right', () => {
    const bs = 4;
    const kv = new KVCacheManager({ numBlocks: 12, blockSize: bs, enablePrefixCaching: true, slidingWindow: 9 });
    const a = req(range(100, 26));
    kv.allocateSlots(a, 26);
    a.numComputedTokens = 26;
    kv.cacheComputedBlocks(a);
    // The next token (26) sees 18..26: blocks 0..3 go first, so they are the first evicted.
    kv.removeSkippedBlocks(a, 26);
    expect(kv.blockTable(a.seqId)).toEqual([-1, -1, -1, -1, 4, 5, 6]);
    kv.free(a);
    const filler = req(range(0, 36));
    expect(kv.allocateSlots(filler, 36)).toBe(true);
    expect(kv.blockTable(filler.seqId).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 7, 8, 9, 10, 11]);
    // a's prompt again, one more token: its first new token (24) sees 16..24, blocks 4 and 5 are still cached.
    const b = req([...range(100, 26), 9]);
    const hit = kv.getComputedBlocks(b);
    expect(hit.numTokens).toBe(24);
    expect(hit.blocks.map((x) => x?.id ?? -1)).toEqual([-1, -1, -1, -1, 4, 5]);
    expect(kv.allocateSlots(b, 3, hit)).toBe(true);
    expect(kv.blockTable(b.seqId)).toEqual([-1, -1, -1, -1, 4, 5, 6]);
    expect(kv.numHeldBlocks(b.seqId)).toBe(3);
    kv.free(b);
    // Block 4 now evicted too (taken by another request): the run from the right (block 5 alone) is too short, and block 0 is gone: no hit.
    const other = req(range(0, 12));
    kv.allocateSlots(other, 12);
    expect(kv.blockTable(other.seqId)).toContain(4);
    expect(kv.getComputedBlocks(req([...range(100, 26), 9])).numTokens).toBe(0);
    kv.free(filler);
    kv.free(other);
    expect(kv.usedBlocks).toBe(0);
  });

  it('counts only the window for the largest request', () => {
    const kv = new KVCacheManager({ numBlocks: 8, blockSize: 4, enablePrefixCaching: false, slidingWindow: 8 });
    expect(kv.maxBlocksPerRequest(1000, 1)).toBe(Math.floor((1 + 8 - 2) / 4) + 2);
    expect(kv.maxBlocksPerRequest(1000, 64)).toBe(Math.floor((64 + 8 - 2) / 4) + 2);
    expect(kv.maxBlocksPerRequest(6, 64)).toBe(2);
    expect(new KVCacheManager({ numBlocks: 8, blockSize: 4, enablePrefixCaching: false }).maxBlocksPerRequest(1000, 1)).toBe(250);
    expect(() => new KVCacheManager({ numBlocks: 8, blockSize: 4, enablePrefixCaching: false, slidingWindow: 0 })).toThrow(/slidingWindow 0 must be a positive integer/);
  });
});

/**
 * Run a random workload through the scheduler, playing the ranks' paged
 * cache: returns the most blocks any request held after a step.
 */
function playWorkload(cfg: SchedulerConfig, seed: number, n: number): { maxHeld: number; preemptions: number; hits: number } {
  const W = cfg.slidingWindow!;
  const bs = cfg.blockSize;
  const s = new Scheduler(cfg);
  const r = rng(seed);
  const slots = new Float64Array(cfg.numBlocks * bs).fill(-1);
  const shared = range(500, 40);
  for (let i = 0; i < n; i++) {
    // Half the prompts share a prefix of 10..40 tokens (prefix-cache hits); lengths well past the window.
    const own = range(1000 * (i + 1), 5 + Math.floor(r() * 40));
    const prompt = r() < 0.5 ? [...shared.slice(0, 10 + Math.floor(r() * 30)), ...own] : own;
    s.add(req(prompt, 1 + Math.floor(r() * 30)));
  }
  let maxHeld = 0;
  let guard = 0;
  while (s.numUnfinished) {
    if (++guard > 10_000) throw new Error('workload did not finish');
    const out = s.schedule();
    const ids = new Map(out.seqs.map((x) => [x.req, prefixIds(x.req.tokens)]));
    const slotOf = (table: number[], p: number, what: string) => {
      const b = table[Math.floor(p / bs)];
      if (b === undefined || b < 0) throw new Error(`${what}: position ${p} has block ${b} (table ${JSON.stringify(table)})`);
      return b * bs + (p % bs);
    };
    // Every new token's K/V goes into its slot first (a step writes before it reads) ...
    for (const x of out.seqs) {
      const table = s.kv.blockTable(x.req.seqId);
      for (let p = x.start; p < x.start + x.numNewTokens; p++) slots[slotOf(table, p, `seq ${x.req.seqId} write`)] = ids.get(x.req)![p]!;
    }
    // ... then each query reads its window.
    for (const x of out.seqs) {
      const table = s.kv.blockTable(x.req.seqId);
      const want = ids.get(x.req)!;
      for (let q = x.start; q < x.start + x.numNewTokens; q++) {
        for (let j = Math.max(0, q - W + 1); j <= q; j++) {
          const got = slots[slotOf(table, j, `seq ${x.req.seqId} query ${q} read`)];
          if (got !== want[j]) throw new Error(`seq ${x.req.seqId}: query ${q} reads key ${j} from a slot holding another token`);
        }
      }
    }
    s.updateAfterStep(out);
    for (const x of out.seqs) {
      if (x.req.isFinished) continue;
      maxHeld = Math.max(maxHeld, s.kv.numHeldBlocks(x.req.seqId));
      if (!x.sample) continue;
      x.req.appendOutput(Math.floor(r() * 50));
      if (x.req.outputTokenIds.length >= x.req.params.maxTokens) s.finish(x.req, 'length');
    }
  }
  expect(s.kv.usedBlocks).toBe(0);
  return { maxHeld, preemptions: s.preemptions, hits: s.kv.hits };
}

describe('Scheduler with a sliding window', () => {
  it.each([
    // window, block size, budget, pool, prefix caching
    [8, 4, 16, 40, true],
    [8, 4, 7, 10, true],
    [5, 3, 64, 60, false],
    [13, 4, 9, 30, true],
    [1, 2, 5, 4, true],
  ])('window %i, blocks of %i, budget %i, %i blocks, prefix caching %s: every query reads its own keys; blocks stay bounded', (W, bs, budget, numBlocks, caching) => {
    const cfg: SchedulerConfig = { maxNumBatchedTokens: budget, maxNumSeqs: 6, blockSize: bs, numBlocks, enablePrefixCaching: caching, slidingWindow: W };
    const { maxHeld, preemptions, hits } = playWorkload(cfg, W * 100 + bs, 24);
    // After a step, a request holds the window of its next token: positions c − W + 1 .. c − 1.
    expect(maxHeld).toBeLessThanOrEqual(Math.ceil((W - 1) / bs) + 1);
    // A one-token window never grows a running request: only admission waits, nothing is preempted.
    if (numBlocks <= 10 && W > 1) expect(preemptions).toBeGreaterThan(0);
    if (caching) expect(hits).toBeGreaterThan(0);
  });

  it('admits prompts far longer than the pool would hold without the window', () => {
    // 200-token prompts, 8 blocks of 4 (32 slots): only the window and one chunk are ever held.
    const cfg: SchedulerConfig = { maxNumBatchedTokens: 8, maxNumSeqs: 2, blockSize: 4, numBlocks: 8, enablePrefixCaching: false, slidingWindow: 6 };
    const s = new Scheduler(cfg);
    expect(s.maxBlocksPerRequest(400)).toBeLessThanOrEqual(8);
    const a = req(range(1, 200), 50);
    s.add(a);
    let steps = 0;
    while (s.numUnfinished) {
      const out = s.schedule();
      s.updateAfterStep(out);
      for (const x of out.seqs) {
        if (!x.sample) continue;
        x.req.appendOutput(3);
        if (x.req.outputTokenIds.length >= 50) s.finish(x.req, 'length');
      }
      expect(s.kv.usedBlocks).toBeLessThanOrEqual(s.maxBlocksPerRequest(250));
      steps++;
    }
    expect(steps).toBe(25 + 49);
    expect(s.kv.usedBlocks).toBe(0);
  });
});

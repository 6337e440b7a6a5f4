import { describe, expect, it } from 'vitest';
import { Request } from './request.js';
import { resolveSamplingParams } from './sampling-params.js';
import { Scheduler, type SchedulerConfig, type SchedulerOutput } from './scheduler.js';

let nextId = 1;
const range = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);
const mk = (len: number, maxTokens = 4) => new Request(nextId++, range(1, len), resolveSamplingParams({ maxTokens }));
const config = (c: Partial<SchedulerConfig>): SchedulerConfig => ({ maxNumBatchedTokens: 64, maxNumSeqs: 8, blockSize: 4, numBlocks: 64, enablePrefixCaching: false, ...c });

/** Play the ranks: every sampling sequence gets token 7; stop at maxTokens. */
function step(s: Scheduler): SchedulerOutput {
  const out = s.schedule();
  s.updateAfterStep(out);
  for (const x of out.seqs) {
    if (!x.sample) continue;
    x.req.appendOutput(7);
    if (x.req.outputTokenIds.length >= x.req.params.maxTokens) s.finish(x.req, 'length');
  }
  return out;
}

describe('Scheduler', () => {
  it('chunks a long prompt under the token budget; only the final chunk samples', () => {
    const s = new Scheduler(config({ maxNumBatchedTokens: 7 }));
    const r = mk(17);
    s.add(r);
    const chunks: [number, number, boolean][] = [];
    for (let i = 0; i < 3; i++) {
      const o = step(s);
      chunks.push([o.seqs[0]!.start, o.seqs[0]!.numNewTokens, o.seqs[0]!.sample]);
    }
    expect(chunks).toEqual([[0, 7, false], [7, 7, false], [14, 3, true]]);
    expect(step(s).seqs[0]).toMatchObject({ start: 17, numNewTokens: 1, sample: true });
  });

  it('decodes first, then prefills in arrival order within budget and maxNumSeqs', () => {
    const s = new Scheduler(config({ maxNumBatchedTokens: 10, maxNumSeqs: 3 }));
    const [a, b, c, d] = [mk(5), mk(3), mk(9), mk(2)];
    [a, b, c, d].forEach((r) => s.add(r!));
    let o = step(s);
    // a (5) + b (3) + 2 tokens of c.
    expect(o.seqs.map((x) => [x.req.seqId, x.numNewTokens])).toEqual([[a!.seqId, 5], [b!.seqId, 3], [c!.seqId, 2]]);
    o = step(s);
    // Decodes of a and b first, then the rest of c's prompt; d waits (maxNumSeqs 3).
    expect(o.seqs.map((x) => [x.req.seqId, x.numNewTokens])).toEqual([[a!.seqId, 1], [b!.seqId, 1], [c!.seqId, 7]]);
    expect(s.waiting).toEqual([d]);
  });

  it('preempts the newest running request when the pool runs dry, then recomputes it', () => {
    // 5 blocks of 4: a and b take 2 each (7 tokens); decoding needs more.
    const s = new Scheduler(config({ numBlocks: 5 }));
    const a = mk(7, 6);
    const b = mk(7, 6);
    s.add(a);
    s.add(b);
    step(s); // both prefilled: 4 blocks
    step(s); // 8 tokens each... a grows to 3 blocks (5 used)
    let o = step(s);
    while (s.preemptions === 0) o = step(s);
    expect(o.freedSeqIds).toContain(b.seqId);
    expect(b.numComputedTokens).toBe(0);
    expect(s.waiting[0]).toBe(b);
    while (s.numUnfinished) step(s);
    expect(a.outputTokenIds).toHaveLength(6);
    expect(b.outputTokenIds).toHaveLength(6);
    expect(b.numPreemptions).toBeGreaterThan(0);
    expect(s.kv.usedBlocks).toBe(0);
  });

  it('a prefix-cache hit starts the request at the cached length', () => {
    const s = new Scheduler(config({ enablePrefixCaching: true }));
    const a = mk(13);
    s.add(a);
    while (s.numUnfinished) step(s);
    const b = new Request(nextId++, range(1, 13), resolveSamplingParams({}));
    s.add(b);
    const o = s.schedule();
    expect(o.seqs[0]).toMatchObject({ start: 12, numNewTokens: 1, isNew: true });
    expect(b.numCachedTokens).toBe(12);
    expect([s.kv.queries, s.kv.hits]).toEqual([13 + 13, 12]);
  });

  it('finishing a waiting or running request frees its blocks', () => {
    const s = new Scheduler(config({ maxNumBatchedTokens: 4 }));
    const a = mk(9);
    const b = mk(3);
    s.add(a);
    s.add(b);
    step(s);
    s.finish(a, 'abort');
    s.finish(b, 'abort');
    expect(s.kv.usedBlocks).toBe(0);
    expect(s.numUnfinished).toBe(0);
    expect(s.schedule().freedSeqIds).toEqual([a.seqId]);
  });
});

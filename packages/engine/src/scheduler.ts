/**
 * vLLM v1's scheduler for one replica. Each step has a token budget
 * (`maxNumBatchedTokens`) and a cap on sequences (`maxNumSeqs`). Running
 * requests go first (decodes, or the next chunk of a long prompt), then
 * waiting ones in arrival order, their prompts cut into chunks when the
 * budget is short. Every request carries `numComputedTokens`, so a chunk, a
 * decode, a prefix-cache hit and a recompute after preemption are the same
 * thing: feed tokens `[numComputed, numComputed + n)`. When the pool runs
 * dry the newest running request is preempted: its blocks are freed and it
 * goes back to the front of the waiting queue.
 */
import { KVCacheManager } from './kv-cache-manager.js';
import type { FinishReason, Request } from './request.js';

export interface SchedulerConfig {
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  blockSize: number;
  numBlocks: number;
  enablePrefixCaching: boolean;
  /** Free KV blocks behind this window (every layer windowed: `freeableWindow` of the ranks' specs); null or absent: none. */
  slidingWindow?: number | null;
}

export interface ScheduledSeq {
  req: Request;
  /** Tokens fed this step: `req.tokens[start, start + numNewTokens)` with start = numComputedTokens before the step. */
  start: number;
  numNewTokens: number;
  /** The chunk reaches the end of the known tokens: sample the next one. */
  sample: boolean;
  /** First step on the ranks since (re)start: ranks set up their state for it. */
  isNew: boolean;
}

export interface SchedulerOutput {
  seqs: ScheduledSeq[];
  numTokens: number;
  /** Sequences the ranks may forget before this step (finished, aborted or preempted since the last one). */
  freedSeqIds: number[];
}

export class Scheduler {
  readonly waiting: Request[] = [];
  readonly running: Request[] = [];
  readonly kv: KVCacheManager;
  private freed: number[] = [];
  /** Requests finished by the scheduler itself (never, today) or aborted: for the caller to report. */
  preemptions = 0;

  /** `kv`: a block pool shared with other schedulers (pipeline virtual engines of one replica); default its own. */
  constructor(
    readonly config: SchedulerConfig,
    kv?: KVCacheManager,
  ) {
    this.kv =
      kv ??
      new KVCacheManager({ numBlocks: config.numBlocks, blockSize: config.blockSize, enablePrefixCaching: config.enablePrefixCaching, slidingWindow: config.slidingWindow });
  }

  /** Most KV blocks one request of `numTokens` tokens holds at once (less than all of them with a sliding window). */
  maxBlocksPerRequest(numTokens: number): number {
    return this.kv.maxBlocksPerRequest(numTokens, this.config.maxNumBatchedTokens);
  }

  /** Sequences another scheduler freed that the ranks have not heard of yet. */
  carryFreed(seqIds: number[]): void {
    this.freed.push(...seqIds);
  }

  add(req: Request): void {
    req.status = 'waiting';
    this.waiting.push(req);
  }

  get numUnfinished(): number {
    return this.waiting.length + this.running.length;
  }

  hasWork(): boolean {
    return this.numUnfinished > 0 || this.freed.length > 0;
  }

  schedule(): SchedulerOutput {
    let budget = this.config.maxNumBatchedTokens;
    const seqs: ScheduledSeq[] = [];
    const scheduled = new Set<Request>();
    let preempted = false;

    // Running requests first, oldest first.
    for (let i = 0; i < this.running.length && budget > 0; ) {
      const req = this.running[i]!;
      const n = Math.min(req.numTokens - req.numComputedTokens, budget);
      if (n <= 0) {
        i++;
        continue;
      }
      let ok = this.kv.allocateSlots(req, n);
      while (!ok) {
        // Preempt the newest running request (possibly this one) and retry.
        const victim = this.running.pop()!;
        this.preempt(victim);
        preempted = true;
        if (victim === req) break;
        ok = this.kv.allocateSlots(req, n);
      }
      if (!ok) break;
      seqs.push({ req, start: req.numComputedTokens, numNewTokens: n, sample: req.numComputedTokens + n === req.numTokens, isNew: req.needsStart });
      scheduled.add(req);
      budget -= n;
      i++;
    }

    // Then waiting ones, unless this step already had to preempt.
    while (!preempted && this.waiting.length && budget > 0 && this.running.length < this.config.maxNumSeqs) {
      const req = this.waiting[0]!;
      const computed = this.kv.getComputedBlocks(req);
      const n = Math.min(req.numTokens - computed.numTokens, budget);
      if (!this.kv.allocateSlots(req, n, computed)) break;
      this.waiting.shift();
      if (req.numCachedTokens < 0) {
        // Prefix-cache stats count a request's first scheduling only (not retries, not recomputes).
        req.numCachedTokens = computed.numTokens;
        if (this.kv.enablePrefixCaching) {
          this.kv.queries += req.numTokens;
          this.kv.hits += computed.numTokens;
        }
      }
      req.numComputedTokens = computed.numTokens;
      req.status = 'running';
      req.needsStart = true;
      this.running.push(req);
      seqs.push({ req, start: req.numComputedTokens, numNewTokens: n, sample: req.numComputedTokens + n === req.numTokens, isNew: true });
      scheduled.add(req);
      budget -= n;
    }

    const freedSeqIds = this.freed;
    this.freed = [];
    return { seqs, numTokens: this.config.maxNumBatchedTokens - budget, freedSeqIds };
  }

  /**
   * The ranks ran the step: advance each request's computed tokens,
   * register its full blocks in the prefix cache, then (sliding window) free
   * the blocks its next tokens will not read; cached ones stay reusable in the
   * free queue. Sampled tokens are appended by the caller (`appendToken`),
   * which also decides when a request stops.
   */
  updateAfterStep(out: SchedulerOutput): void {
    for (const s of out.seqs) {
      if (s.req.isFinished) continue;
      s.req.numComputedTokens = s.start + s.numNewTokens;
      s.req.needsStart = false;
      this.kv.cacheComputedBlocks(s.req);
      this.kv.removeSkippedBlocks(s.req, s.req.numComputedTokens);
    }
  }

  /** End a request (stop, length, abort): free its blocks and tell the ranks at the next step. */
  finish(req: Request, reason: FinishReason): void {
    if (req.isFinished) return;
    const wasStarted = req.status === 'running';
    req.status = 'finished';
    req.finishReason = reason;
    remove(this.running, req);
    remove(this.waiting, req);
    this.kv.free(req);
    if (wasStarted || req.numPreemptions > 0) this.freed.push(req.seqId);
  }

  private preempt(req: Request): void {
    this.kv.free(req);
    req.status = 'waiting';
    req.numComputedTokens = 0;
    req.needsStart = true;
    req.numPreemptions++;
    this.preemptions++;
    this.freed.push(req.seqId);
    this.waiting.unshift(req);
  }
}

function remove<T>(xs: T[], x: T): void {
  const i = xs.indexOf(x);
  if (i >= 0) xs.splice(i, 1);
}

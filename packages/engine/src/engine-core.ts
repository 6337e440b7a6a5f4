/**
 * The engine loop (vLLM's EngineCore): one scheduler per DP replica; while
 * any has work, schedule a step on each, run it on the ranks, hand sampled
 * tokens to the output processor, finish and free what stopped. Requests
 * added or aborted meanwhile take effect at the next step.
 */
import type { Tokenizer } from '@weft/core';
import { EngineDeadError } from './errors.js';
import type { RankExecutor, ResultMessage } from './executor.js';
import { RequestOutputState, type RequestDelta } from './output-processor.js';
import { eventOf, type Child, type Parent, type StreamEvent } from './outputs.js';
import type { StepSeq } from './protocol.js';
import { Request, type FinishReason } from './request.js';
import { usesPenalties, type SamplingParams } from './sampling-params.js';
import { Scheduler, type SchedulerConfig, type SchedulerOutput } from './scheduler.js';

export interface LLMStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  promptTokens: number;
  generationTokens: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  preemptions: number;
}

export type SchedulerLimits = Partial<Pick<SchedulerConfig, 'maxNumBatchedTokens' | 'maxNumSeqs' | 'enablePrefixCaching'>> & { numKvBlocks?: number };

export class EngineCore {
  private schedulers: Scheduler[];
  private readonly children = new Map<number, Child>();
  private readonly aborted = new Set<Child>();
  private looping = false;
  private seqIds = 1;
  private readonly counters = { promptTokens: 0, generationTokens: 0 };

  constructor(
    private readonly executor: RankExecutor,
    config: SchedulerConfig,
    private readonly tokenizer: Tokenizer | null,
    private readonly eosTokenIds: number[],
  ) {
    this.schedulers = Array.from({ length: executor.dp }, () => new Scheduler(config));
    executor.onFailure((e) => {
      for (const c of [...this.children.values()]) this.failChild(c, e);
    });
  }

  /** Blocks each replica's scheduler may use. */
  get numKvBlocks(): number {
    return this.schedulers[0]!.config.numBlocks;
  }

  nextSeqId(): number {
    return this.seqIds++;
  }

  stats(): LLMStats {
    const s = this.schedulers;
    const sum = (f: (x: Scheduler) => number) => s.reduce((a, x) => a + f(x), 0);
    return {
      running: sum((x) => x.running.length),
      waiting: sum((x) => x.waiting.length),
      kvBlocksUsed: sum((x) => x.kv.usedBlocks),
      kvBlocksTotal: sum((x) => x.kv.numBlocks),
      promptTokens: this.counters.promptTokens,
      generationTokens: this.counters.generationTokens,
      prefixCacheQueries: sum((x) => x.kv.queries),
      prefixCacheHits: sum((x) => x.kv.hits),
      preemptions: sum((x) => x.preemptions),
    };
  }

  /** Queue a prompt's n sequences on the least-loaded replica; the caller gets events and completion through the callbacks. */
  add(index: number, ids: number[], sp: SamplingParams, emit: (ev: StreamEvent) => void, done: () => void, fail: (e: Error) => void): Parent {
    const parent: Parent = { index, promptTokenIds: ids, children: [], remaining: sp.n, emit, done, fail };
    // All n go to one replica: they share the prompt's cached blocks.
    let replica = 0;
    for (let d = 1; d < this.schedulers.length; d++) if (this.schedulers[d]!.numUnfinished < this.schedulers[replica]!.numUnfinished) replica = d;
    for (let i = 0; i < sp.n; i++) {
      // n > 1: each completion draws its own stream (seed + i), reproducible when seeded.
      const params = i === 0 ? sp : { ...sp, seed: (sp.seed + i) >>> 0 };
      const req = new Request(this.nextSeqId(), ids, params);
      const child: Child = { index: i, parent, req, out: new RequestOutputState(req, this.tokenizer, this.eosTokenIds), replica };
      parent.children.push(child);
      this.children.set(req.seqId, child);
      this.schedulers[replica]!.add(req);
    }
    this.kick();
    return parent;
  }

  /** Cancel a prompt's unfinished sequences: now between steps, else when the running step returns. */
  abort(parent: Parent): void {
    for (const c of parent.children) if (!c.req.isFinished) this.aborted.add(c);
    if (!this.looping) this.processAborts();
  }

  /** Fail every unfinished request (engine closing). */
  failAll(e: Error): void {
    for (const c of [...this.children.values()]) this.failChild(c, e);
  }

  /** New schedulers with other limits, once idle (tests, benchmarks). `numKvBlocks` may only shrink what the ranks allocated. */
  async reset(limits: SchedulerLimits, allocated: number): Promise<void> {
    if (this.schedulers.some((s) => s.numUnfinished > 0)) throw new Error('resetScheduler: the engine is busy');
    // The loop may still be sending the last step's frees.
    while (this.looping) await new Promise((r) => setTimeout(r, 1));
    const c = this.schedulers[0]!.config;
    const numBlocks = limits.numKvBlocks ?? allocated;
    if (!Number.isInteger(numBlocks) || numBlocks < 1 || numBlocks > allocated) throw new Error(`resetScheduler: numKvBlocks must be in [1, ${allocated}]`);
    const freed = this.schedulers.map((s) => s.schedule().freedSeqIds);
    const { numKvBlocks: _n, ...rest } = limits;
    this.schedulers = this.schedulers.map(() => new Scheduler({ ...c, ...stripUndefined(rest), numBlocks }));
    // Sequences the old schedulers freed since the last step: the ranks still need to hear of them.
    this.schedulers.forEach((s, d) => s.carryFreed(freed[d]!));
  }

  private processAborts(): void {
    for (const c of this.aborted) this.finishChild(c, 'abort', null);
    this.aborted.clear();
  }

  /** End a sequence: free its blocks, tell its caller. */
  private finishChild(c: Child, reason: FinishReason, delta: RequestDelta | null): void {
    if (!c.req.isFinished) this.schedulers[c.replica]!.finish(c.req, reason);
    this.children.delete(c.req.seqId);
    c.parent.emit(eventOf(c, delta ?? c.out.end(reason)));
    if (--c.parent.remaining === 0) c.parent.done();
  }

  private failChild(c: Child, e: Error): void {
    this.children.delete(c.req.seqId);
    if (!c.req.isFinished) this.schedulers[c.replica]!.finish(c.req, 'abort');
    c.parent.fail(e);
  }

  private kick(): void {
    if (this.looping || this.executor.failure) return;
    this.looping = true;
    this.executor.setBusy(true);
    void this.loop().finally(() => {
      this.looping = false;
      // Work added while the loop was winding down.
      if (!this.executor.failure && this.schedulers.some((s) => s.numUnfinished > 0)) this.kick();
      else this.executor.setBusy(false);
    });
  }

  private async loop(): Promise<void> {
    while (!this.executor.failure) {
      this.processAborts();
      if (!this.schedulers.some((s) => s.hasWork())) return;
      const outs = this.schedulers.map((s) => s.schedule());
      if (outs.every((o) => o.seqs.length === 0 && o.freedSeqIds.length === 0)) {
        // Work remains but nothing fits: cannot happen for requests that passed the up-front checks; fail them rather than spin.
        this.failAll(new EngineDeadError('scheduler could not schedule any waiting request (internal error)'));
        return;
      }
      let results: ResultMessage[];
      try {
        results = await this.executor.step('sample', outs.map((o, d) => o.seqs.map((s) => toStepSeq(s, this.schedulers[d]!))), outs.map((o) => o.freedSeqIds));
      } catch (e) {
        this.executor.fail(e as Error);
        return;
      }
      outs.forEach((o, d) => this.applyResult(d, o, results[d]!));
    }
  }

  private applyResult(d: number, out: SchedulerOutput, res: ResultMessage): void {
    for (const s of out.seqs) this.counters.promptTokens += Math.max(0, Math.min(s.start + s.numNewTokens, s.req.numPromptTokens) - s.start);
    this.schedulers[d]!.updateAfterStep(out);
    for (const t of res.sampled ?? []) {
      const c = this.children.get(t.seqId);
      // Aborted (or closed) while the step ran: its token is dropped.
      if (!c || c.req.isFinished || this.aborted.has(c)) continue;
      this.counters.generationTokens++;
      const { delta, finish } = c.out.accept(t.tokenId, t.logprob, t.logits);
      if (finish) this.finishChild(c, finish, delta);
      else c.parent.emit(eventOf(c, delta));
    }
  }
}

function toStepSeq(s: SchedulerOutput['seqs'][number], sched: Scheduler): StepSeq {
  const { req } = s;
  const out: StepSeq = {
    seqId: req.seqId,
    tokens: req.tokens.slice(s.start, s.start + s.numNewTokens),
    contextLen: s.start,
    blockTable: sched.kv.blockTable(req.seqId),
    sample: s.sample,
    tokenIndex: req.outputTokenIds.length,
  };
  if (s.isNew) {
    out.start = { sampling: req.params };
    if (usesPenalties(req.params)) out.start.history = { prompt: [...req.promptTokenIds], output: [...req.outputTokenIds] };
  }
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

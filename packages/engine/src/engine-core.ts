/**
 * The engine loop (vLLM's EngineCore): one scheduler per DP replica; while
 * any has work, schedule a step on each, run it on the ranks, hand sampled
 * tokens to the output processor, finish and free what stopped. Requests
 * added or aborted meanwhile take effect at the next step.
 *
 * With pipeline parallelism each replica has `pp` virtual engines (vLLM's
 * virtual engines): schedulers with their own requests over the replica's one
 * block pool. Each may have a step in flight, so while the last stage runs one
 * step the first stage already runs the next.
 */
import type { Tokenizer } from '@weft/core';
import { EngineDeadError } from './errors.js';
import type { RankExecutor, ResultMessage } from './executor.js';
import { RequestOutputState, type RequestDelta } from './output-processor.js';
import { eventOf, type Child, type Parent, type StreamEvent } from './outputs.js';
import type { StepSeq } from './protocol.js';
import { Request, type FinishReason } from './request.js';
import { usesPenalties, withEosTokenIds, type SamplingParams } from './sampling-params.js';
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
  /** `[virtual engine][replica]`: one step carries virtual engine v's batch of every replica. */
  private schedulers: Scheduler[][];
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
    private readonly virtualEngines = 1,
  ) {
    this.schedulers = makeSchedulers(virtualEngines, executor.dp, config);
    executor.onFailure((e) => {
      for (const c of [...this.children.values()]) this.failChild(c, e);
    });
  }

  /** Blocks each replica's scheduler may use. */
  get numKvBlocks(): number {
    return this.schedulers[0]![0]!.config.numBlocks;
  }

  /** Most KV blocks one request of `numTokens` tokens holds at once (only the window's and a step's with a sliding window). */
  maxBlocksPerRequest(numTokens: number): number {
    return this.schedulers[0]![0]!.maxBlocksPerRequest(numTokens);
  }

  private get all(): Scheduler[] {
    return this.schedulers.flat();
  }

  nextSeqId(): number {
    return this.seqIds++;
  }

  stats(): LLMStats {
    const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((a, x) => a + f(x), 0);
    const s = this.all;
    // Virtual engines of a replica share its pool: count each pool once.
    const kvs = this.schedulers[0]!.map((x) => x.kv);
    return {
      running: sum(s, (x) => x.running.length),
      waiting: sum(s, (x) => x.waiting.length),
      kvBlocksUsed: sum(kvs, (x) => x.usedBlocks),
      kvBlocksTotal: sum(kvs, (x) => x.numBlocks),
      promptTokens: this.counters.promptTokens,
      generationTokens: this.counters.generationTokens,
      prefixCacheQueries: sum(kvs, (x) => x.queries),
      prefixCacheHits: sum(kvs, (x) => x.hits),
      preemptions: sum(s, (x) => x.preemptions),
    };
  }

  /** Queue a prompt's bestOf (≥ n) sequences on the least-loaded replica; the caller gets events and completion through the callbacks. */
  add(index: number, ids: number[], sp: SamplingParams, emit: (ev: StreamEvent) => void, done: () => void, fail: (e: Error) => void): Parent {
    const parent: Parent = { index, promptTokenIds: ids, n: sp.n, children: [], remaining: sp.bestOf, emit, done, fail };
    const base = withEosTokenIds(sp, this.eosTokenIds);
    // The least-loaded replica, then its least-loaded virtual engine; all n go there (they share the prompt's cached blocks).
    const load = (d: number) => this.schedulers.reduce((a, ve) => a + ve[d]!.numUnfinished, 0);
    let replica = 0;
    for (let d = 1; d < this.schedulers[0]!.length; d++) if (load(d) < load(replica)) replica = d;
    let v = 0;
    for (let w = 1; w < this.schedulers.length; w++) if (this.schedulers[w]![replica]!.numUnfinished < this.schedulers[v]![replica]!.numUnfinished) v = w;
    for (let i = 0; i < sp.bestOf; i++) {
      // n (or bestOf) > 1: each sequence draws its own stream (seed + i), reproducible when seeded.
      const params = i === 0 ? base : { ...base, seed: (sp.seed + i) >>> 0 };
      const req = new Request(this.nextSeqId(), ids, params);
      const child: Child = { index: i, parent, req, out: new RequestOutputState(req, this.tokenizer, this.eosTokenIds), scheduler: this.schedulers[v]![replica]! };
      parent.children.push(child);
      this.children.set(req.seqId, child);
      child.scheduler.add(req);
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
    if (this.all.some((s) => s.numUnfinished > 0)) throw new Error('resetScheduler: the engine is busy');
    // The loop may still be sending the last step's frees.
    while (this.looping) await new Promise((r) => setTimeout(r, 1));
    const c = this.schedulers[0]![0]!.config;
    const numBlocks = limits.numKvBlocks ?? allocated;
    if (!Number.isInteger(numBlocks) || numBlocks < 1 || numBlocks > allocated) throw new Error(`resetScheduler: numKvBlocks must be in [1, ${allocated}]`);
    const freed = this.schedulers.map((ve) => ve.map((s) => s.schedule().freedSeqIds));
    const { numKvBlocks: _n, ...rest } = limits;
    this.schedulers = makeSchedulers(this.virtualEngines, this.schedulers[0]!.length, { ...c, ...stripUndefined(rest), numBlocks });
    // Sequences the old schedulers freed since the last step: the ranks still need to hear of them.
    this.schedulers.forEach((ve, v) => ve.forEach((s, d) => s.carryFreed(freed[v]![d]!)));
  }

  private processAborts(): void {
    for (const c of this.aborted) this.finishChild(c, 'abort', null);
    this.aborted.clear();
  }

  /** End a sequence: free its blocks, tell its caller. */
  private finishChild(c: Child, reason: FinishReason, delta: RequestDelta | null): void {
    if (!c.req.isFinished) c.scheduler.finish(c.req, reason);
    this.children.delete(c.req.seqId);
    c.parent.emit(eventOf(c, delta ?? c.out.end(reason)));
    if (--c.parent.remaining === 0) c.parent.done();
  }

  private failChild(c: Child, e: Error): void {
    this.children.delete(c.req.seqId);
    if (!c.req.isFinished) c.scheduler.finish(c.req, 'abort');
    c.parent.fail(e);
  }

  private kick(): void {
    if (this.looping || this.executor.failure) return;
    this.looping = true;
    this.executor.setBusy(true);
    void this.loop().finally(() => {
      this.looping = false;
      // Work added while the loop was winding down.
      if (!this.executor.failure && this.all.some((s) => s.numUnfinished > 0)) this.kick();
      else this.executor.setBusy(false);
    });
  }

  /** Keep one step in flight per virtual engine that has work; apply each answer as it comes. */
  private async loop(): Promise<void> {
    const inFlight = new Map<number, Promise<void>>();
    while (!this.executor.failure) {
      this.processAborts();
      this.schedulers.forEach((replicas, v) => {
        if (inFlight.has(v) || !replicas.some((s) => s.hasWork())) return;
        const outs = replicas.map((s) => s.schedule());
        if (outs.every((o) => o.seqs.length === 0 && o.freedSeqIds.length === 0)) return;
        const step = this.executor
          .step('sample', outs.map((o, d) => o.seqs.map((s) => toStepSeq(s, replicas[d]!))), outs.map((o) => o.freedSeqIds))
          .then(
            (results) => outs.forEach((o, d) => this.applyResult(replicas[d]!, o, results[d]!)),
            (e: unknown) => this.executor.fail(e as Error),
          )
          .finally(() => inFlight.delete(v));
        inFlight.set(v, step);
      });
      if (inFlight.size === 0) {
        // Work remains but nothing fits: cannot happen for requests that passed the up-front checks; fail them rather than spin.
        if (this.all.some((s) => s.numUnfinished > 0)) this.failAll(new EngineDeadError('scheduler could not schedule any waiting request (internal error)'));
        return;
      }
      await Promise.race(inFlight.values());
    }
  }

  private applyResult(sched: Scheduler, out: SchedulerOutput, res: ResultMessage): void {
    for (const s of out.seqs) this.counters.promptTokens += Math.max(0, Math.min(s.start + s.numNewTokens, s.req.numPromptTokens) - s.start);
    sched.updateAfterStep(out);
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

/** `[virtual engine][replica]`; the virtual engines of a replica share one block pool. */
function makeSchedulers(virtualEngines: number, replicas: number, config: SchedulerConfig): Scheduler[][] {
  const pools = Array.from({ length: replicas }, () => new Scheduler(config).kv);
  return Array.from({ length: virtualEngines }, () => pools.map((kv) => new Scheduler(config, kv)));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

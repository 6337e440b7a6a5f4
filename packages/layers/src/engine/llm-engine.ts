/**
 * The driver: starts one worker thread per rank, broadcasts each step's
 * inputs (vLLM's mq_broadcaster), collects sampled tokens from the last
 * stage, and turns them into text. Model-agnostic: the rank entry module
 * decides which model runs.
 */
import { Checkpoint, ConfigError, loadModelConfig, loadTokenizer, resolveParallelConfig, type BackendName, type ParallelConfig, type Tokenizer } from '@weft/core';
import { spawnRanks, type RankPoolLike, type SpawnOptions } from '@weft/comm';
import type { RankArgs } from './rank-runner.js';
import type { DriverMessage, RankMessage, StepMode, StepSequence, TraceEvent } from './protocol.js';
import { GREEDY, type SamplingParams } from './sampler.js';
import { RequestState, type GenerateOptions, type GenerateOutput, type StreamEvent } from './request-state.js';

export interface EngineOptions {
  tp?: number;
  pp?: number;
  dp?: number;
  enableExpertParallel?: boolean;
  backend?: BackendName;
  /** Collective and rendezvous timeout per blocking wait. */
  timeoutMs?: number;
  /** MoE token exchange under expert parallelism (default allgather). */
  moeDispatch?: 'allgather' | 'alltoall';
  /** MLA models (DeepSeek): KV cache of compressed latents (default) or full per-head K/V. */
  mlaKvCache?: 'latent' | 'full';
  /** Record a per-rank timeline (see `trace()`). */
  trace?: boolean;
  /** Weight-loading progress, summed over ranks. */
  onProgress?: (loaded: number, total: number) => void;
  /** The rank entry module (exports `main(ctx)` that calls runRank with a model factory). */
  entry: string | URL;
  /** Starts the ranks; default worker threads (spawnRanks). Processes over TCP: see @weft/comm startProcessRanks. */
  spawn?: (opts: SpawnOptions) => Promise<RankPoolLike>;
}

export type Prompt = string | number[];
type ResultMessage = Extract<RankMessage, { type: 'result' }>;

export class LLMEngine {
  private stepId = 0;
  private nextSeqId = 1;
  private pending = new Map<number, { results: ResultMessage[]; resolve: (m: ResultMessage[]) => void; reject: (e: Error) => void }>();
  private traceEvents: TraceEvent[] = [];
  /** Live tensors on DP replica 0's answering rank after each step, newest last (leak checks). */
  readonly tensorCounts: number[] = [];
  private busy: Promise<unknown> = Promise.resolve();
  private failure: Error | null = null;
  readonly unusedTensors: string[];
  readonly weightBytesPerRank: number[];

  private constructor(
    private readonly pool: RankPoolLike,
    readonly parallel: ParallelConfig & { worldSize: number },
    readonly tokenizer: Tokenizer | null,
    readonly eosTokenIds: number[],
    ready: Extract<RankMessage, { type: 'ready' }>[],
  ) {
    this.unusedTensors = [...new Set(ready.flatMap((r) => r.unused))];
    this.weightBytesPerRank = ready.sort((a, b) => a.rank - b.rank).map((r) => r.weightBytes);
  }

  static async start(modelDir: string, opts: EngineOptions): Promise<LLMEngine> {
    const config = loadModelConfig(modelDir);
    const parallel = resolveParallelConfig({ tp: opts.tp, pp: opts.pp, dp: opts.dp, ep: opts.enableExpertParallel });
    if (opts.backend === undefined || opts.backend === 'wasm') checkWasmFits(modelDir, parallel.tp, parallel.pp);
    const tokenizer = tryLoadTokenizer(modelDir);
    const eos = [config.eosTokenId ?? []].flat().filter((x): x is number => typeof x === 'number');
    const pool = await (opts.spawn ?? spawnRanks)({
      parallel,
      entry: opts.entry,
      args: { modelDir, trace: opts.trace ?? false, moeDispatch: opts.moeDispatch, mlaKvCache: opts.mlaKvCache } satisfies RankArgs,
      backend: opts.backend,
      timeoutMs: opts.timeoutMs,
    });
    const ready: Extract<RankMessage, { type: 'ready' }>[] = [];
    const progress = new Map<number, { loaded: number; total: number }>();
    let engine: LLMEngine | null = null;
    const allReady = new Promise<void>((resolve) => {
      pool.onMessage((_rank, raw) => {
        const m = raw as RankMessage;
        if (m.type === 'progress') {
          progress.set(m.rank, { loaded: m.loaded, total: m.total });
          const sum = [...progress.values()].reduce((a, p) => ({ loaded: a.loaded + p.loaded, total: a.total + p.total }), { loaded: 0, total: 0 });
          // Ranks that have not reported yet are assumed to load as many tensors as those that have.
          opts.onProgress?.(sum.loaded, Math.round((sum.total * pool.worldSize) / progress.size));
        } else if (m.type === 'ready') {
          ready.push(m);
          if (ready.length === pool.worldSize) resolve();
        } else if (m.type === 'result') {
          const p = engine?.pending.get(m.stepId);
          if (p) {
            p.results[m.dpRank] = m;
            if (m.dpRank === 0) engine!.tensorCounts.push(m.numTensors);
            // One answer per DP replica.
            if (p.results.filter(Boolean).length === engine!.dp) {
              engine!.pending.delete(m.stepId);
              p.resolve(p.results);
            }
          }
        } else if (m.type === 'trace') {
          engine?.traceEvents.push(...m.events);
        }
      });
    });
    // A rank that fails while loading rejects results(); surface that instead of waiting forever.
    const failed = pool.results().then(
      () => Promise.reject(new Error('ranks exited before they were ready')),
      (e: unknown) => Promise.reject(e),
    );
    try {
      await Promise.race([allReady, failed]);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    engine = new LLMEngine(pool, parallel, tokenizer, eos, ready);
    failed.catch((e: unknown) => engine!.fail(e as Error));
    return engine;
  }

  get worldSize(): number {
    return this.pool.worldSize;
  }

  /** Data-parallel replicas. */
  get dp(): number {
    return this.parallel.dp;
  }

  /** A rank died or threw: every waiting step fails with its error, and so does every later call. */
  private fail(e: Error): void {
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** Run one step on every rank and wait for the last stage's answer. */
  /** Run one step on every rank; `replicas[d]` are DP replica d's sequences. Resolves with each replica's answer. */
  private async step(mode: StepMode, replicas: StepSequence[][], returnLogits = false): Promise<ResultMessage[]> {
    if (this.failure) throw this.failure;
    const stepId = ++this.stepId;
    const answer = new Promise<ResultMessage[]>((resolve, reject) => this.pending.set(stepId, { results: [], resolve, reject }));
    await this.pool.broadcast({ type: 'step', stepId, mode, replicas, returnLogits } satisfies DriverMessage);
    return answer;
  }

  encode(prompt: Prompt): number[] {
    if (typeof prompt !== 'string') return prompt;
    if (!this.tokenizer) throw new Error('this model directory has no tokenizer.json: pass token ids instead of text');
    return this.tokenizer.encode(prompt);
  }

  decode(ids: number[]): string {
    return this.tokenizer ? this.tokenizer.decode(ids) : ids.join(' ');
  }

  /** Logits for every position of `ids` (full-sequence forward, no cache): `[len][vocab]`. */
  async logits(ids: number[]): Promise<Float32Array[]> {
    return (await this.logitsMany([ids]))[0]!;
  }

  /** Full-sequence logits of several prompts at once, spread over the DP replicas. */
  logitsMany(prompts: number[][]): Promise<Float32Array[][]> {
    return this.exclusive(async () => {
      const seqs = prompts.map((tokens, i) => ({ seqId: i, tokens, contextLen: 0, sampling: GREEDY }));
      const replicas = Array.from({ length: this.dp }, (_, d) => seqs.filter((s) => s.seqId % this.dp === d));
      const results = await this.step('logits-all', replicas);
      const out: Float32Array[][] = [];
      replicas.forEach((rs, d) => {
        const res = results[d]!;
        let row = 0;
        for (const s of rs) {
          const { cols, data } = res.logits!;
          out[s.seqId] = s.tokens.map((_, t) => data.slice((row + t) * cols, (row + t + 1) * cols));
          row += s.tokens.length;
        }
      });
      return out;
    });
  }

  /** Stream tokens of several prompts, batched in one forward per step. */
  async *stream(prompts: Prompt[], opts: GenerateOptions | GenerateOptions[] = {}): AsyncGenerator<StreamEvent> {
    const queue: StreamEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    let error: unknown = null;
    const run = this.exclusive(() =>
      this.runGeneration(prompts, opts, (ev) => {
        queue.push(ev);
        wake?.();
      }),
    ).then(
      () => { done = true; wake?.(); },
      (e: unknown) => { error = e; done = true; wake?.(); },
    );
    while (true) {
      if (queue.length) {
        yield queue.shift()!;
        continue;
      }
      if (done) break;
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
    await run;
    if (error) throw error;
  }

  async generate(prompts: Prompt[], opts: GenerateOptions | GenerateOptions[] = {}): Promise<GenerateOutput[]> {
    return this.exclusive(() => this.runGeneration(prompts, opts, () => {}));
  }

  private async runGeneration(prompts: Prompt[], options: GenerateOptions | GenerateOptions[], emit: (e: StreamEvent) => void): Promise<GenerateOutput[]> {
    // One options object for all prompts, or one per prompt (vLLM's list of SamplingParams).
    const optsOf = (i: number) => (Array.isArray(options) ? options[i] ?? {} : options);
    if (Array.isArray(options) && options.length !== prompts.length) {
      throw new Error(`${options.length} option sets for ${prompts.length} prompts: give one, or one per prompt`);
    }
    const samplingOf = (o: GenerateOptions): SamplingParams => ({ temperature: o.temperature ?? 0, topP: o.topP ?? 1, topK: o.topK ?? 0, seed: o.seed ?? 0 });
    const reqs = prompts.map((p, i) => new RequestState(i, this.nextSeqId++, this.encode(p), optsOf(i), this.eosTokenIds, (ids) => this.decode(ids)));
    const returnLogits = reqs.some((_, i) => optsOf(i).returnLogits === true);
    let active = reqs.filter((r) => !r.finished);
    while (active.length) {
      // Requests are spread over the DP replicas round-robin by prompt index.
      const byReplica = Array.from({ length: this.dp }, (_, d) => active.filter((r) => r.index % this.dp === d));
      const replicas: StepSequence[][] = byReplica.map((rs) =>
        rs.map((r) => ({
          seqId: r.seqId,
          tokens: r.pendingTokens(),
          contextLen: r.contextLen,
          // Per-prompt seeds differ so that identical prompts in one batch need not draw the same tokens.
          sampling: { ...samplingOf(optsOf(r.index)), seed: ((optsOf(r.index).seed ?? 0) * 1000003 + r.index) >>> 0 },
        })),
      );
      const results = await this.step('sample', replicas, returnLogits);
      byReplica.forEach((rs, d) => {
        const res = results[d]!;
        rs.forEach((r, i) => {
          if (res.logits && r.wantsLogits) r.logits.push(res.logits.data.slice(i * res.logits.cols, (i + 1) * res.logits.cols));
          emit(r.accept(res.tokens![i]!));
        });
      });
      const finished = active.filter((r) => r.finished).map((r) => r.seqId);
      if (finished.length) await this.pool.broadcast({ type: 'free', seqIds: finished } satisfies DriverMessage);
      active = active.filter((r) => !r.finished);
    }
    return reqs.map((r) => r.output());
  }

  /** One request at a time through the ranks (continuous batching is future work). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.catch(() => {});
    return run;
  }

  /** Trace events recorded so far (Chrome trace format); `trace: true` at start. */
  trace(): { traceEvents: TraceEvent[]; displayTimeUnit: 'ms' } {
    return { traceEvents: [...this.traceEvents], displayTimeUnit: 'ms' };
  }

  async close(): Promise<void> {
    if (!this.failure) {
      try {
        await this.pool.broadcast({ type: 'shutdown' } satisfies DriverMessage);
        await Promise.race([this.pool.results(), new Promise((r) => setTimeout(r, 2000))]);
      } catch {
        /* terminating anyway */
      }
    }
    await this.pool.terminate();
  }
}

/** The wasm backend addresses at most 4 GB per instance (one per rank); past it, it fails with a bare "memory access out of bounds". */
export const WASM_MAX_BYTES = 4 * 1024 ** 3;

/** Refuse, before any worker starts, a layout whose ranks would not fit the wasm heap; say which would. */
export function checkWasmFits(modelDir: string, tp: number, pp: number): void {
  const ckpt = Checkpoint.open(modelDir);
  let elements = 0;
  try {
    for (const n of ckpt.names()) elements += ckpt.info(n).shape.reduce((a, b) => a * b, 1);
  } finally {
    ckpt.close();
  }
  checkWasmFitsElements(elements, tp, pp, modelDir);
}

export function checkWasmFitsElements(elements: number, tp: number, pp: number, what: string): void {
  // Weights are held as fp32, and XNNPACK keeps a packed copy of every weight matrix it multiplies by
  // (TinyLlama at 1.7 GB per rank runs; a 2.2 GB MoE block aborts): budget 45% of the heap for weights.
  const perRank = (elements * 4) / (tp * pp);
  const budget = WASM_MAX_BYTES * 0.45;
  if (perRank <= budget) return;
  const need = Math.ceil((elements * 4) / budget);
  throw new ConfigError(
    `${what}: ${((elements * 4) / 1e9).toFixed(2)} GB of fp32 weights over tp×pp=${tp * pp} ranks is ` +
      `${(perRank / 1e9).toFixed(2)} GB per rank, over what one wasm rank holds (${(budget / 1e9).toFixed(1)} GB of weights: 4 GB heap, packed copies); ` +
      `use tp×pp ≥ ${need} (e.g. --tp ${nextPow2(need)}) or another backend`,
  );
}

function nextPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

function tryLoadTokenizer(dir: string): Tokenizer | null {
  try {
    return loadTokenizer(dir);
  } catch {
    return null;
  }
}

export type LLMOptions = Omit<EngineOptions, 'entry'>;

/** A model package's `LLM`: `LLM.load(dir, opts)` starts an engine whose ranks run `rankEntry`. */
export function defineLLM(rankEntry: URL): { load(modelDir: string, opts?: LLMOptions): Promise<LLMEngine> } {
  return { load: (modelDir, opts = {}) => LLMEngine.start(modelDir, { ...opts, entry: rankEntry }) };
}

/** `name.ts` next to the caller when running from source, `name.js` from dist (worker threads load it by URL). */
export function siblingModule(importMetaUrl: string, name: string): URL {
  return new URL(`./${name}${importMetaUrl.endsWith('.ts') ? '.ts' : '.js'}`, importMetaUrl);
}

/**
 * The front end (vLLM's `LLM` and `AsyncLLM` in one): loads any registered
 * model across its ranks, checks every request on the driver before a rank
 * sees it, and serves any number of concurrent `generate` / `stream` callers
 * through the engine loop (continuous batching).
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { checkDenseFamilyLayout, checkMoeFamilyLayout, checkWeightsFit, ConfigError, loadCheckedModelConfig, loadTokenizerIfPresent, resolveModelWeightFormat, resolveParallelConfig, type ModelConfig, type ParallelConfig, type Tokenizer } from '@weft/core';
import { EngineCore, type LLMStats, type SchedulerLimits } from './engine-core.js';
import { readEosTokenIds } from './eos.js';
import { EngineDeadError, RequestError } from './errors.js';
import { RankExecutor, readySlidingWindow } from './executor.js';
import { checkLLMOptions, type LLMOptions } from './llm-options.js';
import { rankBackends } from './rank-backend.js';
import { maxBlocksPerRequest } from './kv-cache-manager.js';
import { numKvBlocks } from './kv-sizing.js';
import type { RankArgs } from './rank-runner.js';
import { outputOf, type GenerateOutput, type Parent, type StreamEvent } from './outputs.js';
import type { PromptLogprobsRequest, StepMode, StepSeq, TraceEvent } from './protocol.js';
import type { TokenLogprob } from './sampler.js';
import { loadModelRegistration, modelModuleOf, resolveArchitecture } from './registry.js';
import { checkVocab, resolveSamplingParams, type SamplingParams, type SamplingParamsInit } from './sampling-params.js';

export type { CompletionOutput, GenerateOutput, StreamEvent } from './outputs.js';
export type { LLMStats } from './engine-core.js';
export type { LLMOptions } from './llm-options.js';

export type Prompt = string | number[];

/** Logits a rank holds at once while it reduces prompt logprobs: rows × vocab ≤ this many floats (64 MiB). */
const PROMPT_LOGPROBS_FLOATS = 16 * 2 ** 20;


export interface RequestOptions {
  signal?: AbortSignal;
}

export class LLM {
  readonly unusedTensors: string[];
  /** Weights the quantization would take that some rank keeps unquantized (its input slice is not whole blocks), with why. */
  readonly unquantizedWeights: string[];
  readonly weightBytesPerRank: number[];
  private readonly core: EngineCore;
  private closed = false;

  private constructor(
    private readonly executor: RankExecutor,
    readonly parallel: ParallelConfig & { worldSize: number },
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer | null,
    readonly eosTokenIds: number[],
    readonly maxModelLen: number,
    readonly blockSize: number,
    limits: Required<Omit<SchedulerLimits, 'numKvBlocks'>>,
  ) {
    this.unusedTensors = [...new Set(executor.ready.flatMap((r) => r.unused))];
    this.unquantizedWeights = [...new Set(executor.ready.flatMap((r) => r.unquantized ?? []))];
    this.weightBytesPerRank = executor.ready.map((r) => r.weightBytes);
    // pp virtual engines keep pp steps in flight, so every pipeline stage has work.
    this.core = new EngineCore(executor, { ...limits, blockSize, numBlocks: executor.numKvBlocks, slidingWindow: executor.slidingWindow }, tokenizer, eosTokenIds, parallel.pp);
  }

  /** Start the ranks of the model in `modelDir` (any registered architecture) and size its KV cache. */
  static async load(modelDir: string, opts: LLMOptions = {}): Promise<LLM> {
    checkLLMOptions(opts);
    if (!existsSync(join(modelDir, 'config.json'))) throw new ConfigError(`${modelDir}: no config.json (not a Hugging Face model directory)`);
    const config = loadCheckedModelConfig(modelDir);
    const architecture = resolveArchitecture(modelDir);
    // A model registered by module: import it here first, so a bad module fails before any rank starts.
    const modelModule = modelModuleOf(architecture);
    await loadModelRegistration(architecture, modelModule);
    const parallel = resolveParallelConfig({ tp: opts.tp, pp: opts.pp, dp: opts.dp, ep: opts.enableExpertParallel });
    // Heads that neither divide nor replicate fail here, naming the numbers, not on every rank.
    if (config.family === 'llama' || config.family === 'gemma2') checkDenseFamilyLayout(config, parallel.tp, parallel.pp);
    if (config.family === 'qwen3_moe' || config.family === 'mixtral') checkMoeFamilyLayout(config, { tp: parallel.tp, pp: parallel.pp, ep: parallel.ep });
    const weightFormat = resolveModelWeightFormat(modelDir, { dtype: opts.dtype, quantization: opts.quantization });
    // Worker threads all live on this host; ranks started by a custom launcher may not: check only what a rank needs.
    checkWeightsFit(modelDir, { tp: parallel.tp, pp: parallel.pp, dp: parallel.dp, backend: opts.backend, localRanks: opts.spawn ? 1 : undefined, format: weightFormat });
    const maxModelLen = opts.maxModelLen ?? config.maxPositionEmbeddings;
    if (!Number.isInteger(maxModelLen) || maxModelLen < 2 || maxModelLen > config.maxPositionEmbeddings) {
      throw new ConfigError(`maxModelLen ${maxModelLen} must be an integer in [2, ${config.maxPositionEmbeddings}] (the config's max_position_embeddings)`);
    }
    if (opts.devicePlan !== undefined && opts.devicePlan !== 'auto' && typeof opts.devicePlan !== 'boolean') {
      throw new ConfigError(`devicePlan must be 'auto', true or false; got ${JSON.stringify(opts.devicePlan)}`);
    }
    const blockSize = opts.blockSize ?? 16;
    const maxNumSeqs = opts.maxNumSeqs ?? 64;
    const maxNumBatchedTokens = opts.maxNumBatchedTokens ?? 2048;
    for (const [k, v] of Object.entries({ blockSize, maxNumSeqs, maxNumBatchedTokens })) {
      if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${k} must be a positive integer, got ${v}`);
    }
    const tokenizer = tryLoadTokenizer(modelDir);
    const eos = readEosTokenIds(modelDir, config, tokenizer);
    const args: RankArgs = {
      modelDir,
      architecture,
      modelModule,
      blockSize,
      trace: opts.trace ?? false,
      moeDispatch: opts.moeDispatch,
      mlaKvCache: opts.mlaKvCache,
      devicePlan: opts.devicePlan ?? (opts.webgpuStep === false ? false : 'auto'),
      weightFormat,
      cpuKernels: opts.cpuKernels ?? true,
      // Worker-thread ranks share this host's cores; a custom launcher's ranks are one per process.
      planThreads: Math.max(1, Math.floor(availableParallelism() / (opts.spawn ? 1 : parallel.worldSize))),
      maxNumBatchedTokens,
      maxNumSeqs,
      maxModelLen,
    };
    // Packed weights on tensorflow run the host plan: its ranks start without libtensorflow (rank-backend.ts).
    const backends = rankBackends(opts, weightFormat, parallel.worldSize);
    if (backends.deferred) args.deferredBackend = backends.deferred;
    const executor = await RankExecutor.start(parallel, args, { ...opts, backend: backends.start }, (ready) =>
      numKvBlocks(opts, {
        bytesPerBlock: ready.map((r) => r.kvBytesPerBlock),
        blockSize,
        maxModelLen,
        maxNumSeqs,
        maxBlocksPerSeq: maxBlocksPerRequest(maxModelLen, blockSize, readySlidingWindow(ready), maxNumBatchedTokens),
      }),
    );
    return new LLM(executor, parallel, config, tokenizer, eos, maxModelLen, blockSize, {
      maxNumSeqs,
      maxNumBatchedTokens,
      enablePrefixCaching: opts.enablePrefixCaching ?? true,
    });
  }

  /**
   * What each rank's step runs, as the ranks reported it: `plan (host)`, `plan (webgpu)`, or
   * `tfjs (<why not the plan>)`; one entry per distinct answer.
   */
  get stepPath(): string {
    return [...new Set(this.executor.ready.map((r) => r.stepPath))].join('; ');
  }

  /** The tfjs backend the ranks run on, as they reported it (e.g. `tensorflow`, `wasm`, `cpu`, `webgpu`). */
  get backend(): string {
    return [...new Set(this.executor.ready.map((r) => r.backend))].join(', ');
  }

  get worldSize(): number {
    return this.executor.worldSize;
  }

  /** Data-parallel replicas. */
  get dp(): number {
    return this.parallel.dp;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** KV blocks each replica's ranks allocated. */
  get numKvBlocks(): number {
    return this.executor.numKvBlocks;
  }

  /** Live tensors on DP replica 0's sampling rank after each of the latest steps (at most 1024, newest last). */
  get tensorCounts(): readonly number[] {
    return this.executor.tensorCounts;
  }

  /** @internal Most steps that were ever in flight at once (pp virtual engines at work). */
  get maxStepsInFlight(): number {
    return this.executor.maxInFlight;
  }

  health(): { ok: true } | { ok: false; error: string } {
    // Closed first: close() ends the ranks, and what the executor then reports is not why the engine stopped.
    if (this.closed) return { ok: false, error: 'engine closed' };
    const dead = this.executor.failure;
    if (dead) return { ok: false, error: dead.message };
    return { ok: true };
  }

  stats(): LLMStats {
    return this.core.stats();
  }

  encode(prompt: Prompt): number[] {
    if (typeof prompt !== 'string') return prompt;
    if (!this.tokenizer) throw new RequestError('this model directory has no tokenizer.json: pass token ids instead of text', 'prompt');
    return this.tokenizer.encode(prompt);
  }

  decode(ids: number[]): string {
    return this.tokenizer ? this.tokenizer.decode(ids) : ids.join(' ');
  }

  /** Generate for every prompt; many callers may run at once. One output per prompt, in order. */
  async generate(prompts: Prompt[], params?: SamplingParamsInit | SamplingParamsInit[], opts: RequestOptions = {}): Promise<GenerateOutput[]> {
    this.checkAlive();
    if (!Array.isArray(prompts)) throw new RequestError('prompts must be an array', 'prompts');
    if (Array.isArray(params) && params.length !== prompts.length) {
      throw new RequestError(`${params.length} sampling parameter sets for ${prompts.length} prompts: give one, or one per prompt`, 'params');
    }
    // Validate every prompt before any is queued: a bad one rejects the call and runs nothing.
    const prepared = prompts.map((p, i) => {
      const ids = this.promptIds(p, prompts.length > 1 ? `prompt ${i}` : 'prompt');
      const sp = resolveSamplingParams(Array.isArray(params) ? params[i] : params);
      this.checkFits(ids.length, sp);
      return { ids, sp };
    });
    const parents = prepared.map(({ ids, sp }, i) => {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      return { parent: this.core.add(i, ids, sp, () => {}, resolve, reject), done };
    });
    const detach = this.watchAbort(opts.signal, parents.map((p) => p.parent));
    try {
      await Promise.all(parents.map((p) => p.done));
    } finally {
      detach();
    }
    return parents.map(({ parent }) => outputOf(parent));
  }

  /** Stream one prompt's completions as deltas; `index` says which of the `n`. Leaving the loop early aborts the request. */
  async *stream(prompt: Prompt, params?: SamplingParamsInit, opts: RequestOptions = {}): AsyncGenerator<StreamEvent> {
    this.checkAlive();
    const ids = this.promptIds(prompt, 'prompt');
    const sp = resolveSamplingParams(params);
    // As vLLM: the best of several sequences is known only at the end.
    if (sp.bestOf > sp.n) throw new RequestError(`bestOf (${sp.bestOf}) > n (${sp.n}) cannot be streamed: use generate`, 'bestOf');
    this.checkFits(ids.length, sp);
    const queue: StreamEvent[] = [];
    let wake: (() => void) | null = null;
    let finished = false;
    let error: Error | null = null;
    const settle = (e: Error | null) => {
      error = e;
      finished = true;
      wake?.();
    };
    const push = (ev: StreamEvent) => {
      queue.push(ev);
      wake?.();
    };
    const parent = this.core.add(0, ids, sp, push, () => settle(null), settle);
    const detach = this.watchAbort(opts.signal, [parent]);
    try {
      for (;;) {
        if (queue.length) {
          yield queue.shift()!;
          continue;
        }
        if (error) throw error;
        if (finished) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      detach();
      if (!finished) this.core.abort(parent);
    }
  }

  /** Logits for every position of `ids` (full-sequence forward, no cache): `[len][vocab]`. */
  async logits(ids: number[]): Promise<Float32Array[]> {
    return (await this.logitsMany([ids]))[0]!;
  }

  /** Full-sequence logits of several prompts at once, spread over the DP replicas. */
  async logitsMany(prompts: number[][]): Promise<Float32Array[][]> {
    const { seqs, replicas, results } = await this.fullSequenceStep(prompts, 'logits-all');
    const out: Float32Array[][] = [];
    replicas.forEach((rs, d) => {
      // A replica with no prompt this time answers without logits.
      if (rs.length === 0) return;
      const { cols, data } = results[d]!.logits!;
      let row = 0;
      for (const s of rs) {
        out[seqs.indexOf(s)] = s.tokens.map((_, t) => data.slice((row + t) * cols, (row + t + 1) * cols));
        row += s.tokens.length;
      }
    });
    return out;
  }

  /**
   * vLLM's prompt logprobs: for each prompt, each token's logprob given the tokens before it (the first token has
   * none: `null`), with the `top` most likely tokens of that position — one full-sequence forward, no cache, reduced
   * on the ranks (no `[tokens, vocab]` matrix leaves them). `chunkRows`: rows of logits a rank holds at once
   * (default: 64 MiB of them).
   */
  async promptLogprobs(prompts: number[][], top = 0, chunkRows = Math.max(1, Math.floor(PROMPT_LOGPROBS_FLOATS / this.vocabSize))): Promise<(TokenLogprob | null)[][]> {
    if (!Number.isInteger(top) || top < 0 || top > this.vocabSize) throw new RequestError(`top must be an integer in 0..${this.vocabSize}, got ${top}`, 'top');
    if (!Number.isInteger(chunkRows) || chunkRows < 1) throw new RequestError(`chunkRows must be a positive integer, got ${chunkRows}`, 'chunkRows');
    const { seqs, replicas, results } = await this.fullSequenceStep(prompts, 'prompt-logprobs', { top, chunkRows });
    const out: (TokenLogprob | null)[][] = [];
    replicas.forEach((rs, d) => {
      if (rs.length === 0) return;
      const lps = results[d]!.promptLogprobs!;
      rs.forEach((s, i) => (out[seqs.indexOf(s)] = [null, ...lps[i]!]));
    });
    return out;
  }

  /** One step of whole prompts without the cache (parity checks, prompt logprobs), prompts dealt over the DP replicas. */
  private async fullSequenceStep(prompts: number[][], mode: Exclude<StepMode, 'sample'>, req?: PromptLogprobsRequest) {
    this.checkAlive();
    if (!Array.isArray(prompts)) throw new RequestError('prompts must be an array', 'prompts');
    const seqs = prompts.map((p, i) => {
      const tokens = this.promptIds(p, prompts.length > 1 ? `prompt ${i}` : 'prompt');
      if (tokens.length > this.maxModelLen) throw new RequestError(`prompt of ${tokens.length} tokens is longer than maxModelLen ${this.maxModelLen}`, 'prompt');
      return { seqId: this.core.nextSeqId(), tokens };
    });
    const replicas = Array.from({ length: this.dp }, (_, d) => seqs.filter((_, i) => i % this.dp === d));
    if (seqs.length === 0) return { seqs, replicas, results: [] };
    const step: StepSeq[][] = replicas.map((rs) => rs.map((s) => ({ seqId: s.seqId, tokens: s.tokens, contextLen: 0, blockTable: [], sample: false, tokenIndex: 0 })));
    const results = await this.executor.hold(() => this.executor.step(mode, step, replicas.map(() => []), req));
    return { seqs, replicas, results };
  }

  /**
   * @internal Tests and benchmarks: new schedulers with other limits, once idle. `numKvBlocks` may only shrink
   * the pool the ranks allocated (a smaller pool uses a subset of their blocks); the prefix cache starts empty.
   */
  resetScheduler(limits: SchedulerLimits = {}): Promise<void> {
    return this.core.reset(limits, this.executor.numKvBlocks);
  }

  /** Trace events recorded so far (Chrome trace format); `trace: true` at load. */
  trace(): { traceEvents: TraceEvent[]; displayTimeUnit: 'ms' } {
    return { traceEvents: [...this.executor.traceEvents], displayTimeUnit: 'ms' };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.core.failAll(new EngineDeadError('engine closed'));
    await this.executor.shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private checkAlive(): void {
    if (this.closed) throw new EngineDeadError('engine closed (LLM.close() was called)');
    const dead = this.executor.failure;
    if (dead) throw dead;
  }

  /** Token ids of a prompt, checked on the driver before any rank sees them. */
  private promptIds(prompt: Prompt, what: string): number[] {
    if (typeof prompt !== 'string' && !Array.isArray(prompt)) throw new RequestError(`${what} must be a string or an array of token ids`, 'prompt');
    const ids = this.encode(prompt);
    if (ids.length === 0) throw new RequestError(`${what} is empty: it needs at least one token`, 'prompt');
    const vocab = this.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new RequestError(`${what}: token id ${t} at position ${i} is outside the vocabulary [0, ${vocab})`, 'prompt');
    }
    return ids;
  }

  /** Can this request ever run? Checked before it is queued, naming the limit. */
  private checkFits(promptLen: number, sp: SamplingParams): void {
    checkVocab(sp, this.config.vocabSize);
    const total = promptLen + sp.maxTokens;
    if (total > this.maxModelLen) {
      throw new RequestError(
        `prompt (${promptLen} tokens) + maxTokens (${sp.maxTokens}) = ${total} is more than maxModelLen ${this.maxModelLen}`,
        promptLen >= this.maxModelLen ? 'prompt' : 'maxTokens',
      );
    }
    const blocks = this.core.maxBlocksPerRequest(total);
    const pool = this.core.numKvBlocks;
    if (blocks > pool) {
      throw new RequestError(`prompt + maxTokens = ${total} tokens need ${blocks} KV blocks of ${this.blockSize}, more than the whole pool (numKvBlocks ${pool})`, 'maxTokens');
    }
  }

  private watchAbort(signal: AbortSignal | undefined, parents: Parent[]): () => void {
    if (!signal) return () => {};
    const onAbort = () => parents.forEach((p) => this.core.abort(p));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }
}

/** No tokenizer.json: token ids only. A tokenizer file that is there but broken is an error naming it, never "no tokenizer". */
function tryLoadTokenizer(dir: string): Tokenizer | null {
  return loadTokenizerIfPresent(dir);
}

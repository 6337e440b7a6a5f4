/**
 * The rank runner on the model's device plan (`CausalLMRank.recordPlan()`):
 * the same layers the tfjs `ModelRunner` drives, recorded once and run by an
 * executor — the host executor on the CPU backends (@weft/cpu-kernels), the
 * WebGPU executor on webgpu. TP collectives are plan boundaries inside the
 * executor; PP stages exchange `{hidden_states, residual}` here, as the tfjs
 * runner does. The sampling rank gets the sampled rows' logits (and, where
 * the executor computes them, greedy tokens): plain greedy requests take the
 * executor's token; on an executor that samples on its device (WebGPU) every
 * other request it can sample (device-sampling.ts) is drawn there and only its
 * token and logprobs come back, its penalties' history kept in a device slot
 * while it runs; the rest (returned logits, over 128 logit additions, no slot
 * free) are sampled by the engine's sampler from their row. Same seeds, same
 * results as the tfjs path. A `logits-all`
 * step (full-sequence parity logits) runs on the tfjs path, whose weights
 * are the same loaded parameters.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import { buildAttentionMetadata, traced, type CausalLMRank, type DevicePlan, type IntermediateTensors, type PlanExecutor, type RowSampling, type Tracer } from '@weft/layers';
import { ModelRunner } from './model-runner.js';
import { allGatherCounts, startState, type RankRunner, type SeqState, type StepMsg, type StepResult } from './rank-runner.js';
import { deviceSamplable, fromRowSampled, rowSampling } from './device-sampling.js';
import type { SampledToken, StepSeq } from './protocol.js';
import { argmax, sampleToken } from './sampler.js';
import { usesLogitsProcessors, usesPenalties, type SamplingParams } from './sampling-params.js';

/** Does this request need more than the executor's argmax (anything but plain greedy)? Sampled on the device where the executor can (`deviceRow`), else from its row on the host. */
export function needsHostSampling(p: SamplingParams): boolean {
  return p.temperature > 1e-5 || p.logprobs !== null || p.returnLogits || usesPenalties(p) || usesLogitsProcessors(p);
}

/** LLMOptions.devicePlan: 'auto' (where it pays), true (wherever an executor can), false (never). */

/** Makes the executor of a plan once the weights are loaded (async: a WebGPU device). */
export type PlanExecutorFactory = (plan: DevicePlan) => PlanExecutor | Promise<PlanExecutor>;

export class PlanRunner implements RankRunner {
  private executor: PlanExecutor | null = null;
  private blockSize = 16;
  /** Replicas step together (experts span dp): a KV block past the engine's, which dummy batches write. */
  private dummyBlock: number | null = null;
  private readonly seqs = new Map<number, SeqState>();
  /** The tfjs path, made on the first `logits-all` step only. */
  private tfjs: ModelRunner | null = null;
  /** Sequences the executor samples on its device: their history slot (penalties; null: none) and whether it holds their history yet. */
  private readonly deviceSeqs = new Map<number, { slot: number | null; written: boolean }>();
  private freeSlots: number[] = [];

  constructor(
    private readonly model: CausalLMRank,
    private readonly state: ParallelState,
    private readonly tracer: Tracer | null,
    private readonly plan: DevicePlan,
    private readonly makeExecutor: PlanExecutorFactory,
    /** Loads the rank's deferred tfjs backend (rank-backend.ts) before any tfjs step. */
    private readonly useTfjsBackend: () => Promise<void> = async () => {},
  ) {}

  /** The executor's name (host, webgpu), once made. */
  get executorName(): string | null {
    return this.executor?.name ?? null;
  }

  async initKVCaches(numBlocks: number, blockSize: number): Promise<number> {
    this.blockSize = blockSize;
    if (this.tfjs && !this.executor) return this.tfjs.initKVCaches(numBlocks, blockSize);
    const lockstep = this.state.dp.worldSize > 1 && this.model.needsDpLockstep === true;
    this.dummyBlock = lockstep ? numBlocks : null;
    if (!this.executor) {
      try {
        this.executor = await this.makeExecutor(this.plan);
      } catch (e) {
        // E.g. no WebGPU adapter, a buffer over the device's binding limit: serve on tfjs (same fp32 KV bytes per block).
        process.emitWarning(`device plan unavailable (${(e as Error).message}); this rank runs the tfjs path`, 'WeftDevicePlan');
        await this.useTfjsBackend();
        return this.tfjsRunner().initKVCaches(numBlocks, blockSize);
      }
    }
    this.deviceSeqs.clear();
    this.freeSlots = Array.from({ length: this.executor.samplingSlots ?? 0 }, (_, i) => i).reverse();
    return this.executor.initCaches(numBlocks + (lockstep ? 1 : 0), blockSize);
  }

  private get isReporter(): boolean {
    return this.model.isLastStage && this.state.tp.rankInGroup === 0;
  }

  async step(msg: StepMsg): Promise<StepResult | null> {
    if (msg.mode !== 'sample' || (this.tfjs && !this.executor)) {
      await this.useTfjsBackend();
      return this.tfjsRunner().step(msg);
    }
    const dpRank = this.state.dp.rankInGroup;
    const reporter = this.isReporter;
    for (const id of msg.freed[dpRank] ?? []) {
      this.seqs.delete(id);
      this.releaseDevice(id);
    }
    const seqs = msg.replicas[dpRank] ?? [];
    if (reporter) {
      for (const s of seqs) {
        if (!s.start) continue;
        this.seqs.set(s.seqId, startState(s.start));
        this.releaseDevice(s.seqId);
      }
    }
    const executor = this.executor;
    if (!executor) throw new Error('rank: step before init-kv');
    const batches = splitStep(seqs, executor.maxRows ?? Infinity, executor.maxSeqs ?? Infinity);
    let runs = batches.length;
    if (this.dummyBlock !== null) {
      // vLLM's coordinate_batch_across_dp: replicas run as many batches as the busiest; one with fewer runs
      // one-token dummy batches (into its own KV block, sampling nothing) so the expert collectives spanning
      // replicas stay in step.
      runs = Math.max(...(await allGatherCounts(this.state, batches.length)));
    }
    const sampled: SampledToken[] = [];
    for (let i = 0; i < runs; i++) {
      const batch = batches[i];
      if (batch) sampled.push(...((await this.runBatch(executor, batch)) ?? []));
      else await traced(this.tracer, 'dummy batch', 'step', () => this.dummyStep(executor));
    }
    return reporter ? { dpRank, sampled } : null;
  }

  /** One executor step over `seqs` (within its capacity); the sampling rank's sampled tokens, null elsewhere. */
  private async runBatch(executor: PlanExecutor, seqs: StepSeq[]): Promise<SampledToken[] | null> {
    const reporter = this.isReporter;
    const plan = this.plan;
    const numTokens = seqs.reduce((a, s) => a + s.tokens.length, 0);
    const meta = buildAttentionMetadata(
      seqs.map((s) => ({ seqId: s.seqId, queryLen: s.tokens.length, contextLen: s.contextLen, blockTable: s.blockTable })),
      this.blockSize,
    );
    const sampling = seqs.map((s, i) => ({ s, row: meta.seqs[i]!.start + meta.seqs[i]!.queryLen - 1 })).filter((x) => x.s.sample);
    const stateOf = (s: StepSeq): SeqState => {
      const st = this.seqs.get(s.seqId);
      if (!st) throw new Error(`rank: sequence ${s.seqId} sampled before it was started`);
      return st;
    };
    const rows = reporter ? sampling.map((x) => this.deviceRow(x.s, stateOf(x.s))) : undefined;
    const { hidden, residual } = await this.recvFromPrevious();
    const out = await traced(this.tracer, 'plan step', 'compute', () =>
      executor.step({
        tokenIds: Int32Array.from(seqs.flatMap((s) => s.tokens)),
        positions: Int32Array.from(seqs.flatMap((s) => s.tokens.map((_, i) => s.contextLen + i))),
        seqs: meta.seqs,
        blockSize: this.blockSize,
        sampledRows: Int32Array.from(sampling.map((x) => x.row)),
        hidden,
        residual,
        logitsRows: reporter ? sampling.map((x, i) => !rows![i] && needsHostSampling(stateOf(x.s).sampling)) : undefined,
        sampling: rows,
      }),
    );
    if (!this.model.isLastStage) {
      await this.sendOn(out.hidden!, out.residual!, numTokens);
      return null;
    }
    if (!reporter) return null;
    const V = plan.vocabSize;
    const width = plan.outputs.logits!.width;
    const sampled: SampledToken[] = sampling.map(({ s }, i) => {
      const st = stateOf(s);
      if (rows![i]) {
        const got = out.sampled?.[i];
        if (!got) throw new Error(`rank: the ${executor.name} executor did not sample sequence ${s.seqId}'s row`);
        const t = fromRowSampled(got);
        return t.logprob ? { seqId: s.seqId, tokenId: t.tokenId, logprob: t.logprob } : { seqId: s.seqId, tokenId: t.tokenId };
      }
      if (!needsHostSampling(st.sampling)) {
        const tokenId = out.greedy ? out.greedy[i]! : argmax(out.logits!.subarray(i * width, i * width + V));
        return { seqId: s.seqId, tokenId };
      }
      const row = out.logits!.subarray(i * width, i * width + V);
      const t = sampleToken(row, st.sampling, s.tokenIndex, st.history);
      if (st.history) st.history.output.set(t.tokenId, (st.history.output.get(t.tokenId) ?? 0) + 1);
      const r: SampledToken = { seqId: s.seqId, tokenId: t.tokenId };
      if (t.logprob) r.logprob = t.logprob;
      if (st.sampling.returnLogits) r.logits = row.slice();
      return r;
    });
    return sampled;
  }

  /**
   * The device row of a sequence the executor can sample (null: greedy on its argmax, or the host sampler). A
   * sequence with penalties takes a history slot (written from its history the first time); with none free it
   * stays on the host, whose history is current, until one frees.
   */
  private deviceRow(s: StepSeq, st: SeqState): RowSampling | null {
    const p = st.sampling;
    if (!this.executor?.samplingSlots || !needsHostSampling(p) || !deviceSamplable(p)) return null;
    let d = this.deviceSeqs.get(s.seqId);
    if (!d) {
      const slot = st.history ? this.freeSlots.pop() : null;
      if (slot === undefined) return null;
      this.deviceSeqs.set(s.seqId, (d = { slot, written: false }));
    }
    const row = rowSampling(p, s.tokenIndex, this.plan.vocabSize, d.slot, d.slot !== null && !d.written ? st.history! : undefined);
    d.written = true;
    return row;
  }

  private releaseDevice(seqId: number): void {
    const d = this.deviceSeqs.get(seqId);
    if (d?.slot != null) this.freeSlots.push(d.slot);
    this.deviceSeqs.delete(seqId);
  }

  /** One token at position 0 in the dummy block through this stage (and the pipeline), nothing sampled. */
  private async dummyStep(executor: PlanExecutor): Promise<void> {
    const { hidden, residual } = await this.recvFromPrevious();
    const seqs = buildAttentionMetadata([{ seqId: -1, queryLen: 1, contextLen: 0, blockTable: [this.dummyBlock!] }], this.blockSize).seqs;
    const out = await executor.step({ tokenIds: Int32Array.of(0), positions: Int32Array.of(0), seqs, blockSize: this.blockSize, sampledRows: new Int32Array(0), hidden, residual });
    if (!this.model.isLastStage) await this.sendOn(out.hidden!, out.residual!, 1);
  }

  /** Non-first stages: the previous stage's `{hidden_states, residual}`. */
  private async recvFromPrevious(): Promise<{ hidden?: Float32Array; residual?: Float32Array }> {
    if (this.model.isFirstStage) return {};
    const pp = this.state.pp;
    const d = (await pp.recvTensorDict(pp.rankInGroup - 1)) as unknown as IntermediateTensors;
    const hidden = (await d.hidden_states.data()) as Float32Array;
    const residual = (await d.residual.data()) as Float32Array;
    tf.dispose([d.hidden_states, d.residual]);
    return { hidden, residual };
  }

  private async sendOn(hidden: Float32Array, residual: Float32Array, rows: number): Promise<void> {
    const pp = this.state.pp;
    const H = hidden.length / rows;
    const dict = { hidden_states: tf.tensor2d(hidden, [rows, H]), residual: tf.tensor2d(residual, [rows, H]) };
    await pp.sendTensorDict(dict, pp.rankInGroup + 1);
    tf.dispose(Object.values(dict));
  }

  private tfjsRunner(): ModelRunner {
    return (this.tfjs ??= new ModelRunner(this.model, this.state, this.tracer));
  }

  dispose(): void {
    this.executor?.dispose();
    this.executor = null;
    this.seqs.clear();
    this.deviceSeqs.clear();
    if (this.tfjs) this.tfjs.dispose();
    else this.model.dispose();
  }
}

/**
 * A step cut to an executor's capacity: batches of at most `maxSeqs` sequences and `maxRows` tokens, a long
 * prompt chunk split in order (each piece sees the ones before it in the KV cache); only a sequence's last
 * piece samples.
 */
export function splitStep(seqs: readonly StepSeq[], maxRows: number, maxSeqs: number): StepSeq[][] {
  const batches: StepSeq[][] = [];
  let cur: StepSeq[] = [];
  let rows = 0;
  const flush = () => {
    if (cur.length) batches.push(cur);
    cur = [];
    rows = 0;
  };
  for (const s of seqs) {
    for (let off = 0; off < s.tokens.length; ) {
      if (cur.length === maxSeqs || rows === maxRows) flush();
      const k = Math.min(s.tokens.length - off, maxRows - rows);
      const last = off + k === s.tokens.length;
      cur.push(k === s.tokens.length ? s : { ...s, tokens: s.tokens.slice(off, off + k), contextLen: s.contextLen + off, sample: s.sample && last });
      rows += k;
      off += k;
    }
  }
  flush();
  return batches;
}

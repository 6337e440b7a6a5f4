/**
 * The tfjs step of a rank (vLLM's GPU model runner): the model's forward over its paged KV caches; the sampling
 * rank (TP rank 0 of the last stage of each DP replica) keeps each sequence's sampling state.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import { buildAttentionMetadata, PagedKVCache, scoped, traced, Tracer, type CausalLMRank, type ForwardInput, type IntermediateTensors } from '@weft/layers';
import type { PromptLogprobsRequest, SampledToken, StepSeq } from './protocol.js';
import { logprobsOf, sampleToken, type TokenHistory, type TokenLogprob } from './sampler.js';
import { allGatherCounts, startState, type RankRunner, type SeqState, type StepMsg, type StepResult } from './rank-runner.js';


/** One rank's device state: the model, its paged KV caches, the sampling state of its sequences. */
export class ModelRunner implements RankRunner {
  private caches: PagedKVCache[] = [];
  private blockSize = 16;
  private readonly seqs = new Map<number, SeqState>();

  constructor(
    readonly model: CausalLMRank,
    readonly state: ParallelState,
    private readonly tracer: Tracer | null,
  ) {}

  /** Allocate every layer's pool; returns the bytes taken. */
  initKVCaches(numBlocks: number, blockSize: number): number {
    for (const c of this.caches) c.dispose();
    this.blockSize = blockSize;
    this.caches = this.model.kvCacheSpecs().map((spec) => new PagedKVCache({ ...spec, numBlocks, blockSize }));
    this.model.bindKVCaches(this.caches);
    return this.caches.reduce((a, c) => a + c.bytesPerBlock * numBlocks, 0);
  }

  /** The sampling rank of its replica: TP rank 0 of the last stage holds the gathered logits. */
  private get isReporter(): boolean {
    return this.model.isLastStage && this.state.tp.rankInGroup === 0;
  }

  async step(msg: StepMsg): Promise<StepResult | null> {
    const dpRank = this.state.dp.rankInGroup;
    const reporter = this.isReporter;
    for (const id of msg.freed[dpRank] ?? []) this.seqs.delete(id);
    const seqs = msg.replicas[dpRank] ?? [];
    if (reporter) for (const s of seqs) if (s.start) this.seqs.set(s.seqId, startState(s.start));
    const numTokens = seqs.reduce((a, s) => a + s.tokens.length, 0);
    const empty = reporter ? { dpRank, sampled: [] } : null;
    if (this.state.dp.worldSize > 1 && this.model.needsDpLockstep) {
      // vLLM's coordinate_batch_across_dp: replicas agree on every replica's token count; a replica
      // with none runs a dummy batch so the expert-parallel collectives spanning replicas stay in step.
      const counts = await allGatherCounts(this.state, numTokens);
      if (counts.every((n) => n === 0)) return empty;
      if (numTokens === 0) {
        await traced(this.tracer, 'dummy batch', 'step', () => this.dummyForward());
        return empty;
      }
    } else if (numTokens === 0) {
      return empty;
    }
    return scoped(async () => {
      const useCache = msg.mode === 'sample';
      const meta = buildAttentionMetadata(
        seqs.map((s) => ({ seqId: s.seqId, queryLen: s.tokens.length, contextLen: useCache ? s.contextLen : 0, blockTable: useCache ? s.blockTable : [] })),
        this.blockSize,
      );
      const inputIds = tf.tensor1d(seqs.flatMap((s) => s.tokens), 'int32');
      const positions = tf.tensor1d(seqs.flatMap((s) => s.tokens.map((_, i) => (useCache ? s.contextLen : 0) + i)), 'int32');
      const out = await this.forwardStage({ inputIds, positions, meta, useCache, tracer: this.tracer });
      if (out === null) return null;
      if (msg.mode === 'prompt-logprobs') {
        if (!msg.promptLogprobs) throw new Error('rank: a prompt-logprobs step without its request');
        return this.promptLogprobs(dpRank, seqs, out, msg.promptLogprobs);
      }
      if (!useCache) {
        const logits = await traced(this.tracer, 'lm_head', 'compute', () => this.model.computeLogits(out));
        if (logits === null) return null;
        const [rows, cols] = logits.shape;
        return { dpRank, logits: { rows, cols, data: (await logits.data()) as Float32Array } };
      }
      // Only the last position of each sequence that samples needs logits.
      const sampling = seqs.map((s, i) => ({ s, row: meta.seqs[i]!.start + meta.seqs[i]!.queryLen - 1 })).filter((x) => x.s.sample);
      // Only non-final chunks: every rank of the replica sees the same step, so all skip the LM head.
      if (sampling.length === 0) return empty;
      const hidden = tf.gather(out, tf.tensor1d(sampling.map((x) => x.row), 'int32')) as tf.Tensor2D;
      const logits = await traced(this.tracer, 'lm_head', 'compute', () => this.model.computeLogits(hidden));
      if (logits === null) return null;
      const cols = logits.shape[1];
      const data = (await logits.data()) as Float32Array;
      const sampled = sampling.map(({ s }, i) => this.sample(s, data.subarray(i * cols, (i + 1) * cols)));
      return { dpRank, sampled };
    });
  }

  /**
   * Each prompt position's logprob of the token after it (the first token has none), over the LM head in chunks
   * of rows so that a long prompt on a large vocabulary never holds its whole `[tokens, vocab]` logits. Every TP rank
   * runs the same chunks (the LM head's gather is a collective); the sampling rank reduces.
   */
  private async promptLogprobs(dpRank: number, seqs: StepSeq[], hidden: tf.Tensor2D, req: PromptLogprobsRequest): Promise<StepResult | null> {
    const targets = seqs.flatMap((s) => s.tokens.map((_, i) => s.tokens[i + 1] ?? -1));
    const rowsPerChunk = Math.max(1, req.chunkRows);
    const topN = req.top;
    const entries: (TokenLogprob | null)[] = [];
    for (let r0 = 0; r0 < targets.length; r0 += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, targets.length - r0);
      const part = tf.slice(hidden, [r0, 0], [rows, -1]);
      const logits = await this.model.computeLogits(part);
      part.dispose();
      if (logits === null) continue;
      const cols = logits.shape[1];
      const data = (await logits.data()) as Float32Array;
      logits.dispose();
      for (let i = 0; i < rows; i++) {
        const t = targets[r0 + i]!;
        entries.push(t < 0 ? null : logprobsOf(data.subarray(i * cols, (i + 1) * cols), t, topN));
      }
    }
    if (!this.isReporter) return null;
    let at = 0;
    const promptLogprobs = seqs.map((s) => {
      const mine = entries.slice(at, at + s.tokens.length - 1) as TokenLogprob[];
      at += s.tokens.length;
      return mine;
    });
    return { dpRank, promptLogprobs };
  }

  private sample(s: StepSeq, row: Float32Array): SampledToken {
    const st = this.seqs.get(s.seqId);
    if (!st) throw new Error(`rank: sequence ${s.seqId} sampled before it was started`);
    const hist: TokenHistory | null = st.history;
    const r = sampleToken(row, st.sampling, s.tokenIndex, hist);
    if (st.history) st.history.output.set(r.tokenId, (st.history.output.get(r.tokenId) ?? 0) + 1);
    const out: SampledToken = { seqId: s.seqId, tokenId: r.tokenId };
    if (r.logprob) out.logprob = r.logprob;
    if (st.sampling.returnLogits) out.logits = row.slice();
    return out;
  }

  /** This stage's forward: receive from the previous stage, send to the next; the last stage returns its hidden states. */
  private async forwardStage(input: ForwardInput): Promise<tf.Tensor2D | null> {
    const pp = this.state.pp;
    const intermediate = this.model.isFirstStage ? null : ((await pp.recvTensorDict(pp.rankInGroup - 1)) as unknown as IntermediateTensors);
    const out = await this.model.forward(input, intermediate);
    if (this.model.isLastStage) return out as tf.Tensor2D;
    await pp.sendTensorDict(out as unknown as Record<string, tf.Tensor>, pp.rankInGroup + 1);
    return null;
  }

  /** One token through every layer of this replica, no cache, nothing sampled (vLLM's dummy batch). */
  private dummyForward(): Promise<unknown> {
    return scoped(async () => {
      const meta = buildAttentionMetadata([{ seqId: -1, queryLen: 1, contextLen: 0 }], this.blockSize);
      const ids = tf.tensor1d([0], 'int32');
      await this.forwardStage({ inputIds: ids, positions: tf.tensor1d([0], 'int32'), meta, useCache: false, tracer: this.tracer });
      return null;
    });
  }

  dispose(): void {
    this.model.dispose();
    for (const c of this.caches) c.dispose();
    this.caches = [];
    this.seqs.clear();
  }
}

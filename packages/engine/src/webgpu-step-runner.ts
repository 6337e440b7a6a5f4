/**
 * The rank runner on weft's own WebGPU Llama step (`WebGpuLlamaStep` from
 * @weft/layers) instead of tfjs: at KV-cache init the step uploads the
 * checkpoint's weights once and allocates the paged KV pool with the
 * engine's block ids; each step is one `step.step(...)`. Greedy requests
 * without logprobs, penalties or returned logits take the token argmax'd on
 * the device; every other request is sampled on the host by the engine's
 * sampler from its row of the logits the step reads back (same seeds, same
 * results as the tfjs path). The tfjs model's weights are never loaded unless
 * a `logits-all` step (full-sequence parity logits, which the step does not
 * do) asks for them: then lazily, once.
 *
 * Used when the rank's backend is webgpu, tp = pp = 1, the config is one the
 * step supports (`webGpuStepUnsupported`), and `LLMOptions.webgpuStep` is not false.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import { Checkpoint, loadModelConfig, type LlamaConfig } from '@weft/core';
import { traced, webGpuStepUnsupported, WebGpuLlamaStep, type CausalLMRank, type Tracer } from '@weft/layers';
import { ModelRunner, startState, type RankArgs, type RankRunner, type SeqState, type StepMsg, type StepResult } from './model-runner.js';
import type { SampledToken, StepSeq } from './protocol.js';
import { sampleToken } from './sampler.js';
import { needsHostSampling } from './plan-runner.js';

/** Most sequences one step of the WebGPU step may carry. */
const STEP_MAX_SEQS = 64;

/** Why this rank cannot run the WebGPU step (null when it can). */
export function webGpuStepUnusable(args: RankArgs, state: ParallelState): string | null {
  if (args.devicePlan === false) return 'turned off (devicePlan: false)';
  if (args.weightFormat && (args.weightFormat.quantization || args.weightFormat.dtype !== 'float32')) return 'packed weights (dtype / quantization): the tfjs path runs them';
  if (tf.getBackend() !== 'webgpu') return `backend ${tf.getBackend()}`;
  if (state.tp.worldSize !== 1 || state.pp.worldSize !== 1) return 'tp or pp above 1';
  if ((args.maxNumSeqs ?? STEP_MAX_SEQS) > STEP_MAX_SEQS) return `maxNumSeqs above ${STEP_MAX_SEQS}`;
  const config = loadModelConfig(args.modelDir);
  if (config.family !== 'llama') return `family ${config.family} (Llama only)`;
  return webGpuStepUnsupported(config);
}


export class WebGpuStepRunner implements RankRunner {
  private gpu: WebGpuLlamaStep | null = null;
  private readonly seqs = new Map<number, SeqState>();
  /** The tfjs path, loaded on the first `logits-all` step only. */
  private tfjs: ModelRunner | null = null;
  private readonly config: LlamaConfig;
  /** The step could not be created: every step runs on tfjs. */
  private fellBack = false;

  constructor(
    private readonly model: CausalLMRank,
    private readonly state: ParallelState,
    private readonly args: RankArgs,
    private readonly tracer: Tracer | null,
    private readonly loadTfjsWeights: (model: CausalLMRank) => void,
  ) {
    this.config = loadModelConfig(args.modelDir) as LlamaConfig;
  }

  /** fp32 K and V of every layer for one block. */
  kvBytesPerBlock(blockSize: number): number {
    const c = this.config;
    return 2 * c.numHiddenLayers * c.numKeyValueHeads * c.headDim * 4 * blockSize;
  }

  /** fp32 bytes of the weights the step uploads. */
  get weightBytes(): number {
    const c = this.config;
    const H = c.hiddenSize;
    const D = c.headDim;
    const perLayer = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * D * H + c.numAttentionHeads * D * H + 3 * c.intermediateSize * H + 2 * H;
    return (perLayer * c.numHiddenLayers + c.vocabSize * H * (c.tieWordEmbeddings ? 1 : 2) + H) * 4;
  }

  async initKVCaches(numBlocks: number, blockSize: number): Promise<number> {
    this.gpu?.destroy();
    this.gpu = null;
    if (this.fellBack) return this.tfjsRunner().initKVCaches(numBlocks, blockSize);
    const ck = Checkpoint.open(this.args.modelDir);
    try {
      this.gpu = await WebGpuLlamaStep.create({
        config: this.config,
        weights: ck,
        dtype: 'float32',
        numBlocks,
        blockSize,
        maxRows: this.args.maxNumBatchedTokens ?? 2048,
        maxSeqs: Math.min(this.args.maxNumSeqs ?? STEP_MAX_SEQS, STEP_MAX_SEQS),
        maxModelLen: this.args.maxModelLen,
      });
    } catch (e) {
      // E.g. a buffer over the adapter's binding limit: serve on tfjs (same fp32 KV bytes per block).
      process.emitWarning(`WebGPU step unavailable (${(e as Error).message}); using the tfjs webgpu path`, 'WeftWebGpuStep');
      this.fellBack = true;
      return this.tfjsRunner().initKVCaches(numBlocks, blockSize);
    } finally {
      ck.close();
    }
    return this.kvBytesPerBlock(blockSize) * numBlocks;
  }

  async step(msg: StepMsg): Promise<StepResult | null> {
    if (msg.mode === 'logits-all' || this.fellBack) return this.tfjsRunner().step(msg);
    const dpRank = this.state.dp.rankInGroup;
    for (const id of msg.freed[dpRank] ?? []) this.seqs.delete(id);
    const seqs = msg.replicas[dpRank] ?? [];
    for (const s of seqs) if (s.start) this.seqs.set(s.seqId, startState(s.start));
    if (seqs.length === 0) return { dpRank, sampled: [] };
    const gpu = this.gpu;
    if (!gpu) throw new Error('rank: step before init-kv');
    const stateOf = (s: StepSeq): SeqState => {
      const st = this.seqs.get(s.seqId);
      if (!st) throw new Error(`rank: sequence ${s.seqId} sampled before it was started`);
      return st;
    };
    const needsRow = seqs.map((s) => s.sample && needsHostSampling(stateOf(s).sampling));
    const { tokens, rows } = await traced(this.tracer, 'webgpu step', 'compute', () => this.runPieces(gpu, seqs, needsRow));
    const sampled: SampledToken[] = [];
    seqs.forEach((s, i) => {
      // Non-final prefill chunks: their result is ignored.
      if (!s.sample) return;
      const st = stateOf(s);
      if (!needsHostSampling(st.sampling)) {
        sampled.push({ seqId: s.seqId, tokenId: tokens[i]! });
        return;
      }
      const row = rows[i]!;
      const t = sampleToken(row, st.sampling, s.tokenIndex, st.history);
      if (st.history) st.history.output.set(t.tokenId, (st.history.output.get(t.tokenId) ?? 0) + 1);
      const out: SampledToken = { seqId: s.seqId, tokenId: t.tokenId };
      if (t.logprob) out.logprob = t.logprob;
      if (st.sampling.returnLogits) out.logits = row.slice();
      sampled.push(out);
    });
    return { dpRank, sampled };
  }

  /**
   * The step in as many GPU steps as its capacity needs (one, unless the scheduler's limits were
   * raised past what the step was sized for): at most maxSeqs sequences and maxRows rows each, a
   * prompt chunk longer than that split in order. Returns each sequence's greedy token and, where
   * asked, its last row's logits.
   */
  private async runPieces(gpu: WebGpuLlamaStep, seqs: StepSeq[], needsRow: boolean[]): Promise<{ tokens: number[]; rows: (Float32Array | undefined)[] }> {
    const { maxRows, maxSeqs } = gpu.capacity;
    type Piece = { i: number; tokens: number[]; start: number; blockTable: number[]; last: boolean };
    const batches: Piece[][] = [];
    let cur: Piece[] = [];
    let n = 0;
    const flush = () => {
      if (cur.length) batches.push(cur);
      cur = [];
      n = 0;
    };
    seqs.forEach((s, i) => {
      for (let off = 0; off < s.tokens.length; ) {
        if (cur.length === maxSeqs || n === maxRows) flush();
        const k = Math.min(s.tokens.length - off, maxRows - n);
        cur.push({ i, tokens: s.tokens.slice(off, off + k), start: s.contextLen + off, blockTable: s.blockTable, last: off + k === s.tokens.length });
        n += k;
        off += k;
      }
    });
    flush();
    const V = this.config.vocabSize;
    const tokens: number[] = [];
    const rows: (Float32Array | undefined)[] = [];
    for (const batch of batches) {
      const logits = batch.some((p) => p.last && needsRow[p.i]);
      const r = await gpu.step(batch, { logits });
      batch.forEach((p, j) => {
        if (!p.last) return;
        tokens[p.i] = r.tokens[j]!;
        if (logits) rows[p.i] = r.logits!.subarray(j * V, (j + 1) * V);
      });
    }
    return { tokens, rows };
  }

  private tfjsRunner(): ModelRunner {
    if (!this.tfjs) {
      this.loadTfjsWeights(this.model);
      this.tfjs = new ModelRunner(this.model, this.state, this.tracer);
    }
    return this.tfjs;
  }

  dispose(): void {
    this.gpu?.destroy();
    this.gpu = null;
    this.seqs.clear();
    if (this.tfjs) this.tfjs.dispose();
    else this.model.dispose();
  }
}

/**
 * The device plan on the CPU (issue 19): a whole `DevicePlan` step on
 * Float32Arrays, one @weft/cpu-kernels call per op (native addon, or its
 * portable JS path), no tfjs. Weights are uploaded once, at construction
 * (upload.ts); activations live in buffers reused from step to step (grown
 * when a step is bigger); the paged KV caches are this executor's own
 * (`initCaches`), in the layout of `PagedKVCache`. Collectives go through the
 * plan's groups at the boundaries.
 */
import { hostBuffer, planKernels, type PlanKernels, type View } from '@weft/cpu-kernels';
import { WeftError } from '@weft/core';
import { validateBlockTables, validateMetadata } from '../../attention-metadata.js';
import { dynamicNtkInvFreq } from '../../rotary/frequencies.js';
import { cosSinTable, type RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import type { DevicePlan } from '../builder.js';
import { unsupportedOps, type PlanExecutor, type PlanStepInput, type PlanStepOutput } from '../executor.js';
import type { ActView, AttentionOp, PlanAct, PlanOp } from '../ops.js';
import type { HostKvCache, HostOpImpl, HostOpRun, HostStep } from './context.js';
import { fusePlanOps } from './fuse.js';
import { HOST_CAPS, HOST_OPS } from './op-table.js';
import { packSequences } from './sequences.js';
import { HostWeights } from './upload.js';

export interface HostPlanExecutorOptions {
  /** Threads each linear and attention call splits over, the calling thread included (the addon's pool); default 1. */
  threads?: number;
  /** A @weft/cpu-kernels ISA path ('avx512' | 'avx2' | 'scalar' | 'portable'); default the best this CPU has. */
  isa?: string;
  /** Run adjacent ops as one kernel call where fuse.ts can (default true; false: one call per plan op, for A/B and tests). */
  fuse?: boolean;
  /** Called after every op with its wall time in ms (benchmarks, traces); absent: nothing is timed. Fused ops (fuse.ts) are reported as the op that ran. */
  profile?: (op: PlanOp, ms: number) => void;
}

interface CacheSpec {
  numKvHeads: number;
  headDim: number;
  vHeadDim: number;
  valueIsKeyPrefix: boolean;
}

export class HostPlanExecutor implements PlanExecutor {
  readonly name = 'host';
  readonly kernels: PlanKernels;
  private readonly weights: HostWeights;
  /** What a step runs: the plan's ops, some fused (fuse.ts); `at` is the plan index of the first op each stands for. */
  private readonly runs: Array<{ op: PlanOp; at: number; run: HostOpRun }>;
  private readonly specs: CacheSpec[];
  /** The window block tables are checked with: null (every block) when any layer attends globally. */
  private readonly checkWindow: number | null;
  /** A tp rank ≠ 0 of the logits gather: its logits act is never filled. */
  private readonly logitsOnOtherRank: boolean;
  private bufs: Float32Array[];
  private caches: HostKvCache[] | null = null;
  private numBlocks = 0;
  private blockSize = 0;
  private disposed = false;
  private readonly profile: HostPlanExecutorOptions['profile'];

  constructor(readonly plan: DevicePlan, options: HostPlanExecutorOptions = {}) {
    this.profile = options.profile;
    const why = unsupportedOps(plan, HOST_CAPS);
    if (why) throw new WeftError(why);
    this.kernels = planKernels({ isa: options.isa, threads: options.threads ?? 1 });
    this.weights = new HostWeights(this.kernels);
    const units = options.fuse === false ? plan.ops.map((op, at) => ({ op, at })) : fusePlanOps(plan.ops);
    this.runs = units.map(({ op, at }) => {
      try {
        return { op, at, run: (HOST_OPS[op.kind] as HostOpImpl<typeof op.kind>)(op as never, this.weights) };
      } catch (e) {
        throw new WeftError(`host executor: op ${at} (${op.kind}): ${(e as Error).message}`);
      }
    });
    this.specs = cacheSpecs(plan);
    const attn = plan.ops.filter((o): o is AttentionOp => o.kind === 'attention');
    this.checkWindow = attn.some((o) => o.slidingWindow === null) ? null : Math.max(0, ...attn.map((o) => o.slidingWindow ?? 0));
    this.logitsOnOtherRank = plan.ops.some((o) => o.kind === 'gatherColumns' && o.out.act === plan.outputs.logits && o.group.rankInGroup !== 0);
    this.bufs = plan.acts.map(() => new Float32Array(0));
  }

  /** Allocates one paged cache per attention layer for `numBlocks` blocks of `blockSize` tokens (fp32); bytes used. */
  initCaches(numBlocks: number, blockSize: number): number {
    if (this.disposed) throw new WeftError('host executor: initCaches after dispose()');
    if (!Number.isInteger(numBlocks) || numBlocks < 0 || !Number.isInteger(blockSize) || blockSize < 1) {
      throw new WeftError(`host executor: initCaches(${numBlocks}, ${blockSize}) needs a block count ≥ 0 and a block size ≥ 1`);
    }
    this.caches = this.specs.map((s) => {
      const slots = numBlocks * s.numKvHeads * blockSize;
      // hostBuffer: huge pages where Linux gives them (attention streams the cache as decode streams the weights)
      const pool = (n: number) => new Float32Array(hostBuffer(n * 4));
      return { k: pool(slots * s.headDim), v: s.valueIsKeyPrefix ? null : pool(slots * s.vHeadDim) };
    });
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    return this.caches.reduce((b, c) => b + c.k.byteLength + (c.v?.byteLength ?? 0), 0);
  }

  /** Bytes of weights this executor copied at upload (transposed fp32 weights, norm vectors; packed blocks and row-major fp32 weights are the parameters'). */
  get uploadedBytes(): number {
    return this.weights.copiedBytes;
  }

  async step(input: PlanStepInput): Promise<PlanStepOutput> {
    if (this.disposed) throw new WeftError('host executor: step after dispose()');
    const T = input.positions.length;
    const S = input.sampledRows.length;
    this.checkStep(input, T);
    this.grow(T, S);
    const { plan } = this;
    const copyIn = (act: PlanAct | null, src: Float32Array | undefined, what: string) => {
      if (!act) return;
      if (!src || src.length !== T * act.width) throw new WeftError(`host executor: this stage needs input ${what} [${T}, ${act.width}], got ${src ? src.length : 'none'}`);
      this.bufs[act.id]!.set(src);
    };
    copyIn(plan.inputs.hidden, input.hidden, 'hidden');
    copyIn(plan.inputs.residual, input.residual, 'residual');
    const step = this.makeStep(input, T, S);
    for (let i = 0; i < this.runs.length; i++) {
      const { op, at, run } = this.runs[i]!;
      try {
        const t0 = this.profile ? performance.now() : 0;
        const r = run(step);
        if (r) await r;
        if (this.profile) this.profile(op, performance.now() - t0);
      } catch (e) {
        throw new WeftError(`host executor: op ${at} (${op.kind}${op.kind === 'attention' ? `, cache ${op.cacheIndex}` : ''}): ${(e as Error).message}`);
      }
    }
    const copyOut = (act: PlanAct | null, rows: number) => (act ? this.bufs[act.id]!.slice(0, rows * act.width) : null);
    return {
      logits: this.logitsOnOtherRank ? null : copyOut(plan.outputs.logits, S),
      greedy: null,
      hidden: copyOut(plan.outputs.hidden, T),
      residual: copyOut(plan.outputs.residual, T),
    };
  }

  dispose(): void {
    this.disposed = true;
    this.caches = null;
    this.bufs = [];
    this.weights.clear();
  }

  private checkStep(input: PlanStepInput, T: number): void {
    if (input.tokenIds.length !== T) throw new WeftError(`host executor: ${input.tokenIds.length} token ids for ${T} positions`);
    validateMetadata({ seqs: [...input.seqs], blockSize: input.blockSize }, T);
    if (this.plan.numCaches === 0) return;
    if (!this.caches) throw new WeftError('host executor: step before initCaches');
    if (input.blockSize !== this.blockSize) throw new WeftError(`host executor: the step has blocks of ${input.blockSize} tokens, the caches ${this.blockSize}`);
    validateBlockTables({ seqs: [...input.seqs], blockSize: input.blockSize }, this.numBlocks, this.checkWindow);
  }

  /** Every activation's buffer holds at least this step's rows (grown by half again, never shrunk). */
  private grow(T: number, S: number): void {
    this.plan.acts.forEach((a, i) => {
      const need = (a.rows === 'tokens' ? T : S) * a.width;
      if (this.bufs[i]!.length < need) this.bufs[i] = new Float32Array(Math.max(need, Math.ceil(this.bufs[i]!.length * 1.5)));
    });
  }

  private makeStep(input: PlanStepInput, T: number, S: number): HostStep {
    const bufs = this.bufs;
    const { seqTable, blockTables } = packSequences(input.seqs);
    const rope = new Map<RotaryEmbedding, [Float32Array, Float32Array]>();
    const caches = this.caches;
    return {
      input,
      tokens: T,
      sampled: S,
      rowsOf: (a: PlanAct) => (a.rows === 'tokens' ? T : S),
      buf: (a: PlanAct) => bufs[a.id]!,
      view: (v: ActView): View => ({ data: bufs[v.act.id]!, offset: v.col, stride: v.act.width }),
      cosSin: (r: RotaryEmbedding) => {
        let cs = rope.get(r);
        if (!cs) rope.set(r, (cs = stepCosSin(r, input.positions)));
        return cs;
      },
      cache: (i: number) => caches![i]!,
      numBlocks: this.numBlocks,
      seqTable,
      blockTables,
    };
  }
}

/** cos/sin at the step's positions, as `RotaryEmbedding.cosSin` gives the tfjs path (dynamic NTK past maxPosition included). */
function stepCosSin(r: RotaryEmbedding, positions: Int32Array): [Float32Array, Float32Array] {
  if (r.type === 'dynamic') {
    const seqLen = positions.reduce((m, p) => Math.max(m, p + 1), 0);
    if (seqLen > r.maxPosition) return cosSinTable(dynamicNtkInvFreq(r.base, r.rotaryDim, r.scaling?.factor ?? 1, r.maxPosition, seqLen), positions, 1);
  }
  return cosSinTable(r.invFreq, positions, r.attentionScaling);
}

/** Each cache index's shape, from its attention op (every index 0 … numCaches − 1 exactly once). */
function cacheSpecs(plan: DevicePlan): CacheSpec[] {
  const specs: CacheSpec[] = [];
  for (const op of plan.ops) {
    if (op.kind !== 'attention') continue;
    if (specs[op.cacheIndex]) throw new WeftError(`host executor: two attention ops use cache ${op.cacheIndex}`);
    specs[op.cacheIndex] = { numKvHeads: op.numKvHeads, headDim: op.headDim, vHeadDim: op.vHeadDim, valueIsKeyPrefix: op.valueIsKeyPrefix };
  }
  for (let i = 0; i < plan.numCaches; i++) if (!specs[i]) throw new WeftError(`host executor: no attention op uses cache ${i} of ${plan.numCaches}`);
  return specs;
}

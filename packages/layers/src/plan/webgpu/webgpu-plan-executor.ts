/// <reference types="@webgpu/types" />
/**
 * The WebGPU executor of a rank's `DevicePlan`: weights uploaded once into
 * buffers it owns (`GpuWeights`), one buffer per plan activation (maxRows ×
 * width; maxSeqs × width for sampled rows), a paged K (and V) cache per
 * attention op, and per step one upload of the step's inputs (`si`: token
 * ids, positions, row → sequence, sampled rows, block tables; the cos/sin
 * rows of each rotary table at the step's positions), one command buffer per
 * boundary-free run of ops (one compute pass), and a read-back of what the
 * step hands on: greedy token ids (argmax on the device), the logits rows
 * asked for, a pipeline stage's hidden/residual. A collective (`allReduce`,
 * `gatherColumns`) ends a command buffer: its activation comes back to the
 * host, goes through the op's group (`plan/collectives.ts`) and is written
 * back before the next one. A `moe` op routes on the device (moe-experts.ts:
 * its dispatches join the command buffer; above 256 experts its logits are
 * read back and routed on the host, a boundary). With no boundary, the next step's command buffer is
 * recorded while the GPU runs this one.
 */
import { ConfigError, WeftError } from '@weft/core';
import type { LinearWeight } from '../../linear/linear-weight.js';
import type { RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import type { DevicePlan } from '../builder.js';
import { unsupportedOps, type ExecutorCaps, type PlanExecutor, type PlanStepInput, type PlanStepOutput } from '../executor.js';
import type { AllReduceOp, AttentionOp, GatherColumnsOp, MoeOp, PlanAct, PlanOpKind } from '../ops.js';
import { BUF, requestDevice, subgroupSize } from './device.js';
import { GpuWeights } from './gpu-weights.js';
import { prefetchHostValues } from '../weights.js';
import { argmaxKernel, buildKernels, fuseResidualAdds, type Kernel, type KernelContext, type KernelTuning, type StepShape } from './plan-kernels.js';
import type { CacheBuffers } from './wgsl-attention.js';
import { readViewRows, runBoundary } from './collective-boundary.js';
import { KernelRecorder, type ShapedKernel } from './kernel-recorder.js';
import { MoeExperts, stackExperts } from './moe-experts.js';
import { writeCosSin, writeStepBuffer } from './step-inputs.js';
import { copyOutputs, HEAD_BYTES, IDS_BYTES, readOutputs, type OutputLayout } from './step-outputs.js';
import { DeviceSampler } from './device-sampler.js';
import { layoutOffsets, type StepLayout } from './wgsl-common.js';
import type { StepTrace } from './step-trace.js';
import { GpuWait } from './gpu-wait.js';

export const WEBGPU_CAPS: ExecutorCaps = {
  name: 'webgpu',
  ops: new Set<PlanOpKind>(['embed', 'rmsNorm', 'linear', 'rotary', 'attention', 'gatedAct', 'add', 'allReduce', 'gatherSampled', 'gatherColumns', 'softcap', 'copyHeads', 'headMatmul', 'roundInput', 'moe']),
};

/** Why the WebGPU executor cannot run `plan` (an op kind it lacks, or a layout of one it has), or null. */
export function webgpuPlanUnsupported(plan: DevicePlan): string | null {
  const lacks = unsupportedOps(plan, WEBGPU_CAPS);
  if (lacks) return lacks;
  // EP across DP replicas exchanges rows inside the op through tfjs tensors (moe/dispatch.ts): the host executor runs it.
  if (plan.ops.some((op) => op.kind === 'moe' && op.exchange)) return "the webgpu executor has no 'moe' with experts spanning dp replicas (MoeOp.exchange)";
  return null;
}

export interface WebGpuPlanExecutorOptions {
  plan: DevicePlan;
  /** A device to use (one per rank); else one is requested from `navigator.gpu` and destroyed with the executor. */
  device?: GPUDevice;
  /** Tokens one step may carry (prefill chunk + decode rows). Default 512. */
  maxRows?: number;
  /** Sequences one step may carry (sampled rows). Default 64. */
  maxSeqs?: number;
  /** Longest sequence in positions: sizes the per-sequence block table. */
  maxModelLen: number;
  /** Kernel shapes to use instead of the defaults (benches). */
  tuning?: KernelTuning;
  /** Time each step end to end, host and GPU (benches: step-trace.ts). */
  trace?: StepTrace;
}

interface Segment {
  kernels: Kernel[];
  /** The collective (or the moe op, routed on the host) that ends it; null: the last segment. */
  boundary: AllReduceOp | GatherColumnsOp | MoeOp | null;
  moe: MoeExperts | null;
}



/**
 * Kernels of a step's leading command buffers (the rest go in the last one). Dawn records a command buffer's
 * Vulkan commands at its submit (0.17–0.27 ms for TinyLlama's 114 dispatches on the H200, 2026-12-03), and the
 * GPU starts only after: the first buffers are short so it starts at once and runs while the host records the rest.
 */
const SUBMIT_SPLIT = [8, 40];

export class WebGpuPlanExecutor implements PlanExecutor {
  readonly name = 'webgpu';
  readonly maxRows: number;
  readonly maxSeqs: number;
  readonly vocabSize: number;
  private readonly weights: GpuWeights;
  private readonly acts = new Map<PlanAct, GPUBuffer>();
  private readonly ropes = new Map<RotaryEmbedding, GPUBuffer>();
  private readonly owned: GPUBuffer[] = [];
  private caches: CacheBuffers[] = [];
  private cacheBytes = 0;
  private layout: StepLayout | null = null;
  private si: GPUBuffer | null = null;
  private siWords = new Uint32Array(0);
  private ids!: GPUBuffer;
  private readback!: GPUBuffer;
  /** Samples non-greedy rows on the device (device-sampler.ts); made with the logits. */
  private sampler: DeviceSampler | null = null;
  private segments: Segment[] = [];
  private readonly scratches = new Map<string, PlanAct>();
  private readonly recorder: KernelRecorder;
  private numBlocks = 0;
  /** Every attention layer windowed: the widest window (blocks before it may be freed: −1 in tables); else null. */
  private readonly window: number | null;
  private pending: { key: string; cbs: GPUCommandBuffer[]; slot: number } | null = null;
  private readonly trace: StepTrace | null;
  /** Sleeps through most of each read-back's wait (gpu-wait.ts: dawn-node's polling feeds V8 long collections). */
  private readonly gpuWait = new GpuWait();
  private destroyed = false;

  private constructor(
    readonly device: GPUDevice,
    readonly plan: DevicePlan,
    private readonly ownDevice: boolean,
    opts: WebGpuPlanExecutorOptions,
  ) {
    this.maxRows = opts.maxRows ?? 512;
    this.maxSeqs = opts.maxSeqs ?? 64;
    if (!(this.maxSeqs >= 1 && this.maxSeqs <= IDS_BYTES / 4)) throw new ConfigError(`webgpu plan: maxSeqs ${this.maxSeqs} must be 1..${IDS_BYTES / 4}`);
    if (!(this.maxRows >= this.maxSeqs)) throw new ConfigError(`webgpu plan: maxRows ${this.maxRows} below maxSeqs ${this.maxSeqs}`);
    if (!(opts.maxModelLen >= 1)) throw new ConfigError(`webgpu plan: maxModelLen ${opts.maxModelLen}`);
    this.maxModelLen = opts.maxModelLen;
    this.tuning = opts.tuning ?? {};
    this.embeds = plan.ops.some((op) => op.kind === 'embed');
    this.trace = opts.trace ?? null;
    const logits = plan.outputs.logits;
    this.vocabSize = plan.vocabSize;
    if (logits && !(this.vocabSize >= 1 && this.vocabSize <= logits.width)) throw new ConfigError(`webgpu plan: vocabSize ${this.vocabSize} outside 1..${logits.width}`);
    this.weights = new GpuWeights(device);
    this.recorder = new KernelRecorder(device, (a) => this.acts.get(a)!);
    const attn = plan.ops.filter((o): o is AttentionOp => o.kind === 'attention');
    this.window = attn.length && attn.every((a) => a.slidingWindow !== null) ? Math.max(...attn.map((a) => a.slidingWindow!)) : null;
  }

  private readonly maxModelLen: number;
  private tuning: KernelTuning;
  private readonly embeds: boolean;

  /** Check the plan, take a device, upload every weight once, allocate the activations. */
  static async create(opts: WebGpuPlanExecutorOptions): Promise<WebGpuPlanExecutor> {
    const why = webgpuPlanUnsupported(opts.plan);
    if (why) throw new ConfigError(why);
    const device = opts.device ?? (await requestDevice('webgpu plan'));
    const ex = new WebGpuPlanExecutor(device, opts.plan, !opts.device, opts);
    let release: (() => void) | null = null;
    try {
      release = await prefetchHostValues(opts.plan);
      await ex.recorder.scoped('uploading the weights', () => ex.upload());
      await device.queue.onSubmittedWorkDone();
    } catch (e) {
      ex.dispose();
      throw e;
    } finally {
      release?.();
    }
    return ex;
  }

  /** Bytes of the matrices the linear ops multiply by: what one decode step reads (the bandwidth bound; embedding lookups read a few rows). */
  /** Sequences whose token histories (penalties) the device sampler keeps; none without logits. */
  get samplingSlots(): number | undefined {
    return this.sampler?.slots;
  }

  get weightBytes(): number {
    const seen = new Set<unknown>();
    let n = 0;
    for (const op of this.plan.ops) {
      if (op.kind !== 'linear' || seen.has(op.weight)) continue;
      seen.add(op.weight);
      n += this.weights.matrix(op.weight).bytes;
    }
    return n;
  }

  /** One K (and V) buffer per attention op's cacheIndex, `[numBlocks, Hk, blockSize, D]`. Returns their bytes. */
  async initCaches(numBlocks: number, blockSize: number): Promise<number> {
    return this.recorder.scoped(`allocating the KV caches (${numBlocks} blocks of ${blockSize})`, () => this.allocateCaches(numBlocks, blockSize));
  }

  private allocateCaches(numBlocks: number, blockSize: number): number {
    if (!(Number.isInteger(numBlocks) && numBlocks >= 1 && Number.isInteger(blockSize) && blockSize >= 1)) {
      throw new ConfigError(`webgpu plan: initCaches(${numBlocks}, ${blockSize})`);
    }
    for (const c of this.caches) {
      c.k.destroy();
      c.v?.destroy();
    }
    this.caches = [];
    this.cacheBytes = 0;
    const specs = new Map<number, AttentionOp>();
    for (const op of this.plan.ops) if (op.kind === 'attention') specs.set(op.cacheIndex, op);
    const max = this.device.limits.maxStorageBufferBindingSize;
    for (let i = 0; i < this.plan.numCaches; i++) {
      const op = specs.get(i);
      if (!op) throw new WeftError(`webgpu plan: no attention op uses cache ${i}`);
      const mk = (width: number, what: string) => {
        const bytes = numBlocks * op.numKvHeads * blockSize * width * 4;
        if (bytes > max) throw new ConfigError(`webgpu plan: cache ${i} ${what} takes ${bytes} bytes for ${numBlocks} blocks, above one binding's ${max}: fewer blocks`);
        this.cacheBytes += bytes;
        return this.device.createBuffer({ size: bytes, usage: BUF.STORAGE, label: `cache ${i} ${what}` });
      };
      this.caches.push({ k: mk(op.headDim, 'K'), v: op.v ? mk(op.vHeadDim, 'V') : null });
    }
    this.numBlocks = numBlocks;
    this.layout = { maxRows: this.maxRows, maxSeqs: this.maxSeqs, maxBlocks: Math.ceil(this.maxModelLen / blockSize), blockSize };
    this.siWords = new Uint32Array(layoutOffsets(this.layout).words);
    this.si?.destroy();
    this.si = this.device.createBuffer({ size: this.siWords.byteLength, usage: BUF.STORAGE | BUF.COPY_DST, label: 'si' });
    // Kernels bind the caches and si: rebuilt for the new buffers.
    this.recorder.reset();
    this.pending = null;
    this.buildSegments();
    return this.cacheBytes;
  }

  async step(input: PlanStepInput): Promise<PlanStepOutput> {
    if (!this.layout) throw new ConfigError('webgpu plan: initCaches before the first step');
    const T = input.positions.length;
    const S = input.sampledRows.length;
    if (T === 0) return { logits: null, greedy: null, hidden: null, residual: null };
    const tr = this.trace?.begin(T);
    this.writeInputs(input);
    const sampleKey = this.sampler?.prepare(input.sampling, S) ?? '';
    if (tr) tr.written = performance.now();
    const rowsAsked = this.plan.outputs.logits ? Array.from({ length: S }, (_, s) => input.logitsRows?.[s] ?? true) : [];
    let holdsLogits = this.plan.outputs.logits !== null;
    const shape: StepShape = { T, S, decode: input.seqs.every((q) => q.queryLen === 1) };
    // Dispatches carried into the next command buffer: a moe op's experts (routed on the host at its boundary),
    // or, when a moe routes on the device, the segments before it with its own dispatches (no boundary).
    let prefix: ShapedKernel[] = [];
    // No read-back before the last command buffer: it depends on the step's shape alone and can be recorded ahead.
    let hostFree = true;
    for (const seg of this.segments) {
      if (seg.boundary?.kind === 'moe' && seg.moe!.onDevice(T)) {
        prefix = [...prefix, ...seg.kernels.map((kernel) => ({ kernel, shape })), ...seg.moe!.deviceDispatches(T)];
        continue;
      }
      if (seg.boundary) {
        hostFree = false;
        const enc = this.device.createCommandEncoder();
        this.encodeKernels(enc, seg.kernels, shape, prefix);
        prefix = [];
        const buf = (a: PlanAct) => this.acts.get(a)!;
        if (seg.boundary.kind === 'moe') {
          prefix = seg.moe!.dispatches(await readViewRows(this.device, enc, seg.boundary.logits, T, buf, this.readback), T);
          continue;
        }
        const got = await runBoundary(this.device, enc, seg.boundary, T, S, buf, this.readback);
        if (got === 'no-logits') holdsLogits = false;
        continue;
      }
      const key = `${T}/${S}/${shape.decode ? 1 : 0}/${holdsLogits ? 1 : 0}/${rowsAsked.map((r) => (r ? 1 : 0)).join('')}/${sampleKey}`;
      const ahead = hostFree && this.pending?.key === key ? this.pending : null;
      const slot = ahead ? ahead.slot : (this.trace?.take() ?? -1);
      const cbs = ahead ? ahead.cbs : this.recordLast(seg, shape, holdsLogits, rowsAsked, prefix, slot, hostFree ? key : null);
      this.pending = null;
      // One submit each: Dawn turns a command buffer into Vulkan commands when it is submitted, so the GPU starts on the first while the host turns the rest.
      for (const cb of cbs) this.device.queue.submit([cb]);
      if (tr) {
        tr.slot = slot;
        tr.submitted = performance.now();
        void this.device.queue.onSubmittedWorkDone().then(() => (tr.done = performance.now()));
      }
      // Without read-backs the next step of this shape has the same command buffer: record it now.
      if (hostFree) {
        const next = this.trace?.take() ?? -1;
        this.pending = { key, cbs: this.recordLast(seg, shape, holdsLogits, rowsAsked, prefix, next, key), slot: next };
        if (tr) tr.recorded = performance.now();
      }
      const from = this.tuning.hostWait === 'poll' ? performance.now() : this.gpuWait.before(key);
      if (tr) tr.slept = performance.now() - from;
      const out = await this.readOutputs(T, S, holdsLogits, rowsAsked);
      this.gpuWait.learn(key, from);
      if (tr) tr.mapped = performance.now();
      this.recorder.throwErrors();
      if (tr) tr.end = performance.now();
      return out;
    }
    throw new Error('webgpu plan: no final segment');
  }

  dispose(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pending = null;
    this.weights.destroy();
    for (const b of this.owned) b.destroy();
    for (const c of this.caches) {
      c.k.destroy();
      c.v?.destroy();
    }
    this.si?.destroy();
    this.sampler?.destroy();
    for (const s of this.segments) s.moe?.destroy();
    this.caches = [];
    this.acts.clear();
    this.recorder.clear();
    if (this.ownDevice) this.device.destroy();
  }

  // --- profiling (bench:gpu) ------------------------------------------------------------------

  /** Kernel shapes from now on (benches compare them on one upload of the weights): the kernels are rebuilt. */
  retune(tuning: KernelTuning): void {
    if (!this.layout) throw new ConfigError('webgpu plan: initCaches before retune');
    this.tuning = tuning;
    this.recorder.reset();
    this.gpuWait.clear();
    this.pending = null;
    this.buildSegments();
  }

  /** Write a step's inputs without running it (then `encode` records its kernels). */
  prepare(input: PlanStepInput): void {
    this.writeInputs(input);
  }

  /**
   * Record every kernel of a boundary-free step (moe ops routed on the device count as none) for a step of T rows, S sampled (decode: one row per
   * sequence, default T = S), only those whose tag passes `only`. Returns the dispatches.
   */
  encode(enc: GPUCommandEncoder, T: number, S: number, only?: (tag: string) => boolean, decode = T === S, timestampWrites?: GPUComputePassTimestampWrites): number {
    const shape = { T, S, decode };
    const all = this.boundaryFree(shape);
    if (!all) throw new ConfigError('webgpu plan: encode() profiles steps without collectives (or a moe op routed on the host) only');
    return this.recorder.encode(enc, [], shape, this.si!, this.layout!, all.filter((k) => !only || only(k.kernel.tag)), timestampWrites);
  }

  /** Kernel tags of a step in order (one per dispatch). */
  tags(T: number, S: number, decode = T === S): string[] {
    const shape = { T, S, decode };
    const all = this.boundaryFree(shape) ?? this.segments.flatMap((s) => s.kernels.map((kernel) => ({ kernel, shape })));
    return all.filter(({ kernel: k, shape: sh }) => k.workgroups(sh, k.variant(sh))).map(({ kernel }) => kernel.tag);
  }

  /** A step's dispatches in order (a moe op routed on the device included), or null when it has a boundary. */
  private boundaryFree(shape: StepShape): ShapedKernel[] | null {
    const out: ShapedKernel[] = [];
    for (const s of this.segments) {
      out.push(...s.kernels.map((kernel) => ({ kernel, shape })));
      if (!s.boundary) continue;
      if (s.boundary.kind !== 'moe' || !s.moe!.onDevice(shape.T)) return null;
      out.push(...s.moe!.deviceDispatches(shape.T));
    }
    return out;
  }

  // --- internals ------------------------------------------------------------------------------

  private buffer(bytes: number, usage: number, label: string): GPUBuffer {
    const b = this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage, label });
    this.owned.push(b);
    return b;
  }

  private upload(): void {
    const max = this.device.limits.maxStorageBufferBindingSize;
    for (const a of this.plan.acts) {
      const bytes = (a.rows === 'tokens' ? this.maxRows : this.maxSeqs) * a.width * 4;
      if (bytes > max) throw new ConfigError(`webgpu plan: activation ${a.name} takes ${bytes} bytes at maxRows ${this.maxRows}, above one binding's ${max}`);
      this.acts.set(a, this.buffer(bytes, BUF.STORAGE | BUF.COPY_DST | BUF.COPY_SRC, a.name));
    }
    for (const op of this.plan.ops) {
      if (op.kind === 'embed') this.weights.matrix(op.table);
      else if (op.kind === 'linear') {
        this.weights.matrix(op.weight);
        if (op.bias) this.weights.vector(op.bias);
      } else if (op.kind === 'rmsNorm') this.weights.vector(op.weight);
      // Read while the host values are prefetched (kernels are built later, at initCaches).
      else if (op.kind === 'headMatmul') this.weights.heads(op.weight);
      else if (op.kind === 'moe') {
        stackExperts(op, (ws, name) => this.weights.stacked(ws as LinearWeight[], name));
        if (op.correctionBias) this.weights.vector(op.correctionBias);
      }
      else if (op.kind === 'rotary' && !this.ropes.has(op.rope)) this.ropes.set(op.rope, this.buffer(this.maxRows * op.rope.rotaryDim * 4, BUF.STORAGE | BUF.COPY_DST, 'cos|sin'));
    }
    this.ids = this.buffer(IDS_BYTES, BUF.STORAGE | BUF.COPY_SRC, 'ids');
    // The read-back buffer serves every boundary and the step's outputs (one at a time).
    const o = this.plan.outputs;
    if (o.logits) this.sampler = new DeviceSampler(this.device, { logits: o.logits, vocab: this.vocabSize, maxSeqs: this.maxSeqs, slots: this.maxSeqs });
    let bytes = HEAD_BYTES + (o.logits ? this.maxSeqs * o.logits.width * 4 : 0) + (o.hidden ? this.maxRows * o.hidden.width * 4 : 0) + (o.residual ? this.maxRows * o.residual.width * 4 : 0);
    for (const op of this.plan.ops) {
      if (op.kind === 'allReduce') bytes = Math.max(bytes, this.rowsCap(op.x.act) * op.x.act.width * 4);
      if (op.kind === 'gatherColumns') bytes = Math.max(bytes, this.rowsCap(op.x.act) * (op.x.act.width + op.out.act.width) * 4);
      if (op.kind === 'moe') bytes = Math.max(bytes, this.maxRows * op.logits.act.width * 4);
    }
    this.readback = this.buffer(bytes, BUF.MAP_READ | BUF.COPY_DST, 'readback');
  }

  /** An activation of the executor's own (the moe op's per-pair rows), `rows` × width, shared by every op of one shape. */
  private scratch(name: string, width: number, rows: number): PlanAct {
    const key = `${name}/${width}/${rows}`;
    let a = this.scratches.get(key);
    if (!a) {
      a = { id: this.plan.acts.length + this.scratches.size, name, width, rows: 'tokens' };
      this.scratches.set(key, a);
      this.acts.set(a, this.buffer(rows * width * 4, BUF.STORAGE | BUF.COPY_DST | BUF.COPY_SRC, name));
    }
    return a;
  }

  private rowsCap(a: PlanAct): number {
    return a.rows === 'tokens' ? this.maxRows : this.maxSeqs;
  }

  private buildSegments(): void {
    const outs = [this.plan.outputs.logits, this.plan.outputs.hidden, this.plan.outputs.residual];
    const ops = fuseResidualAdds(this.plan.ops, outs);
    const ctx: KernelContext = {
      matrix: (w) => this.weights.matrix(w),
      vector: (p) => this.weights.vector(p),
      heads: (m) => this.weights.heads(m),
      stacked: (ws, name) => this.weights.stacked(ws as LinearWeight[], name),
      cache: (i) => this.caches[i]!,
      cosSin: (r) => this.ropes.get(r)!,
      sharedBytes: this.device.limits.maxComputeWorkgroupStorageSize,
      subgroupSize: subgroupSize(this.device),
      tuning: this.tuning,
    };
    for (const s of this.segments) s.moe?.destroy();
    this.segments = [];
    let from = 0;
    for (let i = 0; i <= ops.length; i++) {
      const op = ops[i];
      if (i < ops.length && op!.kind !== 'allReduce' && op!.kind !== 'gatherColumns' && op!.kind !== 'moe') continue;
      const kernels = buildKernels(ops, from, i, ctx, outs);
      const boundary = i < ops.length ? (op as AllReduceOp | GatherColumnsOp | MoeOp) : null;
      const moe = boundary?.kind === 'moe' ? new MoeExperts(this.device, boundary, ctx, (name, width, rows) => this.scratch(name, width, rows), this.maxRows) : null;
      this.segments.push({ kernels, boundary, moe });
      from = i + 1;
    }
    const last = this.segments[this.segments.length - 1]!;
    if (this.plan.outputs.logits) last.kernels.push(argmaxKernel(this.plan.outputs.logits, this.vocabSize, this.ids), this.sampler!.kernel);
  }

  private encodeKernels(enc: GPUCommandEncoder, kernels: readonly Kernel[], shape: StepShape, prefix: readonly ShapedKernel[] = []): number {
    return this.recorder.encode(enc, kernels, shape, this.si!, this.layout!, prefix);
  }

  /**
   * The last segment's command buffers: its kernels (argmax included) — the first few in command buffers of
   * their own (`submitSplit`: Dawn turns each into Vulkan commands at its submit, ~1.5 µs a dispatch on the
   * host, and the GPU waits for that) — then the outputs into the read-back buffer. `slot`: the trace's
   * timestamp slot (−1: none), written at the first pass's beginning and the last one's end. `key`: the step's
   * shape key where its dispatches depend on it alone (no boundary before): they are resolved once per key.
   */
  private recordLast(seg: Segment, shape: StepShape, holdsLogits: boolean, rowsAsked: boolean[], prefix: ShapedKernel[] = [], slot = -1, key: string | null = null): GPUCommandBuffer[] {
    const { T, S } = shape;
    const groups = () => {
      const kernels = holdsLogits ? seg.kernels : seg.kernels.filter((k) => k.tag !== 'argmax');
      const all: ShapedKernel[] = [...prefix, ...kernels.map((kernel) => ({ kernel, shape }))];
      const cuts = [0];
      for (const n of this.tuning.submitSplit ?? SUBMIT_SPLIT) if (cuts[cuts.length - 1]! + n < all.length) cuts.push(cuts[cuts.length - 1]! + n);
      cuts.push(all.length);
      return cuts.slice(1).map((c, i) => all.slice(cuts[i], c));
    };
    const lists = this.recorder.resolved(key, groups, this.si!, this.layout!);
    const cbs: GPUCommandBuffer[] = [];
    for (let i = 0; i < lists.length; i++) {
      const first = i === 0;
      const last = i + 1 === lists.length;
      const enc = this.device.createCommandEncoder();
      const ts = first || last ? this.trace?.passWrites(slot, first && last ? 'both' : first ? 'begin' : 'end') : undefined;
      this.recorder.record(enc, lists[i]!, ts);
      if (last) {
        this.trace?.resolve(enc, slot);
        copyOutputs(enc, this.outputLayout(), { T, S, holdsLogits, rowsAsked }, this.ids, (a) => this.acts.get(a)!, this.readback);
      }
      cbs.push(enc.finish());
    }
    return cbs;
  }

  private readOutputs(T: number, S: number, holdsLogits: boolean, rowsAsked: boolean[]): Promise<PlanStepOutput> {
    return readOutputs(this.readback, this.outputLayout(), { T, S, holdsLogits, rowsAsked });
  }

  private outputLayout(): OutputLayout {
    return { outputs: this.plan.outputs, maxRows: this.maxRows, maxSeqs: this.maxSeqs, sampler: this.sampler };
  }

  private writeInputs(input: PlanStepInput): void {
    const bounds = { layout: this.layout!, numBlocks: this.numBlocks, maxModelLen: this.maxModelLen, window: this.window, embeds: this.embeds };
    writeStepBuffer(this.device, this.si!, this.siWords, input, bounds);
    writeCosSin(this.device, this.ropes, input.positions);
    const T = input.positions.length;
    const inputs: [PlanAct | null, Float32Array | undefined, string][] = [
      [this.plan.inputs.hidden, input.hidden, 'hidden'],
      [this.plan.inputs.residual, input.residual, 'residual'],
    ];
    for (const [a, data, what] of inputs) {
      if (!a) continue;
      if (!data || data.length !== T * a.width) throw new ConfigError(`webgpu plan: this stage needs the previous stage's ${what} [${T}, ${a.width}], got ${data ? data.length : 'none'}`);
      this.device.queue.writeBuffer(this.acts.get(a)!, 0, data.buffer, data.byteOffset, data.byteLength);
    }
  }
}

/// <reference types="@webgpu/types" />
/**
 * weft's own WebGPU decode/prefill step for Llama, outside tfjs: weights
 * uploaded once into buffers this object owns (fp32, or bf16 packed two per
 * u32), activations reused step to step, a paged KV pool per layer
 * (`slot = blockTable[p / blockSize] · blockSize + p % blockSize`, vLLM's
 * block manager's numbering), and one command buffer per step: every dispatch
 * recorded into one compute pass, step inputs written with one upload, only
 * the sampled token ids (greedy argmax on the device) read back, plus the
 * sampled rows' logits when asked for.
 *
 * Dispatches per step, up to 16 rows (GEMV): embed, per layer [RMSNorm + qkv
 * + rotary + KV-page write, attention, o + residual add, RMSNorm + gate_up +
 * SiLU·mul, down + residual add], final norm (sampled rows only), LM head,
 * argmax: 5·L + 4. More rows (tiled GEMM): RMSNorm and rotary + KV write are
 * their own dispatches, 8·L + 4.
 */
import type { LlamaConfig, TensorSource } from '@weft/core';
import { ConfigError } from '@weft/core';
export { requestDevice } from '../../plan/webgpu/device.js';
import { defaultInvFreq, linearInvFreq, llama3InvFreq } from '../../rotary/frequencies.js';
import { cosSinTable, roundInvFreq } from '../../rotary/rotary-embedding.js';
import { requestDevice } from '../../plan/webgpu/device.js';
import {
  GEMM_TILE,
  gemvRowsPerWg,
  argmaxWgsl,
  attentionGqaWgsl,
  attentionWgsl,
  embedWgsl,
  gemmWgsl,
  gemvWgsl,
  layoutOffsets,
  ropeKvWgsl,
  rmsNormWgsl,
  type StepLayout,
  type WeightDtype,
} from './wgsl.js';

const U = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
const MAP_READ_MODE = 0x1;
/** Byte offset of the logits in the read-back buffer (after the sampled ids of up to 64 sequences, 256-aligned). */
const LOGITS_AT = 256;
/** Rows up to which the GEMV kernel runs; above it the tiled GEMM. */
export const GEMV_MAX_ROWS = 16;

export interface WebGpuLlamaStepOptions {
  config: LlamaConfig;
  /** The checkpoint (`Checkpoint.open(dir)` from @weft/core); read once at creation. */
  weights: TensorSource;
  /** Weight storage on the GPU: fp32, or bf16 (halves the bytes a decode step reads). Default float32. */
  dtype?: WeightDtype;
  /** A device to use; else one is requested from `navigator.gpu` (set up by `initBackend({ prefer: 'webgpu' })`). */
  device?: GPUDevice;
  /** KV pool blocks per layer (block ids 0..numBlocks-1). */
  numBlocks: number;
  blockSize?: number;
  /** Tokens one step may carry (prefill chunk + decode rows). Default 512. */
  maxRows?: number;
  /** Sequences one step may carry. Default 64. */
  maxSeqs?: number;
  /** Longest sequence (positions). Default the config's max_position_embeddings. */
  maxModelLen?: number;
}

/** One sequence's part of a step: its new tokens at positions `start .. start + tokens.length`. */
export interface StepSeq {
  tokens: ArrayLike<number>;
  /** Position of `tokens[0]` (the number of tokens already in its KV cache). */
  start: number;
  /** Block ids of the sequence (covering positions 0 .. start + tokens.length). */
  blockTable: ArrayLike<number>;
}

export interface StepResult {
  /** Greedy next token per sequence (argmax of the last row's logits). */
  tokens: Int32Array;
  /** `[seqs, vocab]` logits of each sequence's last row, when asked for. */
  logits?: Float32Array;
}

interface Dispatch {
  tag: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  wg: [number, number];
}

interface LayerBuffers {
  inNorm: GPUBuffer;
  postNorm: GPUBuffer;
  qkv: GPUBuffer;
  o: GPUBuffer;
  gate: GPUBuffer;
  up: GPUBuffer;
  down: GPUBuffer;
  kv: GPUBuffer;
}

export class WebGpuLlamaStep {
  readonly dtype: WeightDtype;
  readonly layout: StepLayout;
  readonly numBlocks: number;
  /** Bytes of weights one decode step reads (for the bandwidth bound). */
  readonly weightBytes: number;
  private readonly c: LlamaConfig;
  private readonly bufs: GPUBuffer[] = [];
  private layers: LayerBuffers[] = [];
  private embed!: GPUBuffer;
  private lmHead!: GPUBuffer;
  private finalNorm!: GPUBuffer;
  private cosSin!: GPUBuffer;
  private act!: Record<'x' | 'h' | 'qkv' | 'qr' | 'attn' | 'mlp' | 'hs' | 'logits' | 'tok' | 'tokOut' | 'si' | 'readback', GPUBuffer>;
  /** The next step's command buffer, recorded while the GPU runs this one (a step's commands depend only on its shape). */
  private pending: { key: string; cb: GPUCommandBuffer } | null = null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly plans = new Map<string, Dispatch[]>();
  private readonly siWords: Uint32Array;
  private destroyed = false;
  private readonly ownDevice: boolean;

  private constructor(
    readonly device: GPUDevice,
    opts: WebGpuLlamaStepOptions,
    ownDevice: boolean,
  ) {
    const c = opts.config;
    this.c = c;
    this.ownDevice = ownDevice;
    this.dtype = opts.dtype ?? 'float32';
    this.numBlocks = opts.numBlocks;
    const blockSize = opts.blockSize ?? 16;
    const maxLen = opts.maxModelLen ?? c.maxPositionEmbeddings;
    this.layout = { maxRows: opts.maxRows ?? 512, maxSeqs: opts.maxSeqs ?? 64, maxBlocks: Math.ceil(maxLen / blockSize), blockSize };
    this.siWords = new Uint32Array(layoutOffsets(this.layout).words);
    const H = c.hiddenSize;
    const D = c.headDim;
    const perLayer = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * D * H + c.numAttentionHeads * D * H + 3 * c.intermediateSize * H;
    this.weightBytes = (perLayer * c.numHiddenLayers + c.vocabSize * H) * (this.dtype === 'float32' ? 4 : 2);
  }

  /** Build the step: check the config, take a device, upload every weight once, compile the pipelines. */
  static async create(opts: WebGpuLlamaStepOptions): Promise<WebGpuLlamaStep> {
    const c = opts.config;
    const why = unsupported(c);
    if (why) throw new ConfigError(`WebGpuLlamaStep: ${why}`);
    let device = opts.device;
    const own = !device;
    if (!device) device = await requestDevice('WebGpuLlamaStep');
    const step = new WebGpuLlamaStep(device, opts, own);
    try {
      step.upload(opts.weights);
      step.allocate();
      await device.queue.onSubmittedWorkDone();
    } catch (e) {
      step.destroy();
      throw e;
    }
    return step;
  }

  /** Block ids any step may use: 0 .. numBlocks - 1. */
  get capacity(): { maxRows: number; maxSeqs: number; maxBlocksPerSeq: number; blockSize: number } {
    const l = this.layout;
    return { maxRows: l.maxRows, maxSeqs: l.maxSeqs, maxBlocksPerSeq: l.maxBlocks, blockSize: l.blockSize };
  }

  /** Prefill (whole prompts or chunks) of several sequences; returns each one's greedy next token. */
  async prefill(seqs: StepSeq[], opts: { logits?: boolean } = {}): Promise<StepResult> {
    return this.step(seqs, opts);
  }

  /** One decode step: one token per sequence. */
  async decode(seqs: { token: number; position: number; blockTable: ArrayLike<number> }[], opts: { logits?: boolean } = {}): Promise<StepResult> {
    return this.step(
      seqs.map((s) => ({ tokens: [s.token], start: s.position, blockTable: s.blockTable })),
      opts,
    );
  }

  /**
   * Any mix of prefill chunks and decode rows in one step (vLLM's flattened batch): writes the
   * new tokens' K/V into their slots, returns the greedy token after each sequence's last row.
   */
  async step(seqs: StepSeq[], opts: { logits?: boolean } = {}): Promise<StepResult> {
    const { rows } = this.writeInputs(seqs);
    const S = seqs.length;
    const logitBytes = opts.logits ? S * this.c.vocabSize * 4 : 0;
    const key = `${rows}/${S}/${logitBytes}`;
    const cb = this.pending?.key === key ? this.pending.cb : this.record(rows, S, logitBytes);
    this.pending = null;
    this.device.queue.submit([cb]);
    // While the GPU runs this step, record the next one of the same shape (decode repeats it).
    this.pending = { key, cb: this.record(rows, S, logitBytes) };
    const rb = this.act.readback;
    await rb.mapAsync(MAP_READ_MODE);
    try {
      const tokens = Int32Array.from(new Uint32Array(rb.getMappedRange(0, S * 4)));
      const logits = logitBytes ? new Float32Array(rb.getMappedRange(LOGITS_AT, logitBytes).slice(0)) : undefined;
      return { tokens, logits };
    } finally {
      rb.unmap();
    }
  }

  /** One step's command buffer: every dispatch in one pass, then the sampled ids (and logits) to the read-back buffer. */
  private record(rows: number, seqs: number, logitBytes: number): GPUCommandBuffer {
    const enc = this.device.createCommandEncoder();
    this.encode(enc, rows, seqs);
    enc.copyBufferToBuffer(this.act.tokOut, 0, this.act.readback, 0, seqs * 4);
    if (logitBytes) enc.copyBufferToBuffer(this.act.logits, 0, this.act.readback, LOGITS_AT, logitBytes);
    return enc.finish();
  }

  /**
   * Greedy decode of `steps` tokens for every sequence with the sampled token fed back on the
   * device (no read-back between steps: the host records and submits step n+1 while the GPU runs
   * step n). `seqs[i].token` at `position`; block tables must cover position + steps - 1.
   * Returns `[steps][seqs]` token ids.
   */
  async decodeChained(seqs: { token: number; position: number; blockTable: ArrayLike<number> }[], steps: number): Promise<Int32Array[]> {
    const S = seqs.length;
    if (steps * S * 4 > this.act.readback.size) throw new ConfigError(`decodeChained: ${steps} steps × ${S} seqs exceed the read-back buffer`);
    for (let t = 0; t < steps; t++) {
      // After the first step the ids are the previous step's samples, copied on the device.
      this.writeInputs(
        seqs.map((s) => ({ tokens: [s.token], start: s.position + t, blockTable: s.blockTable })),
        t === 0 ? undefined : null,
      );
      const enc = this.device.createCommandEncoder();
      this.encode(enc, S, S);
      enc.copyBufferToBuffer(this.act.tokOut, 0, this.act.tok, 0, S * 4);
      enc.copyBufferToBuffer(this.act.tokOut, 0, this.act.readback, t * S * 4, S * 4);
      this.device.queue.submit([enc.finish()]);
    }
    const rb = this.act.readback;
    await rb.mapAsync(MAP_READ_MODE);
    try {
      const all = new Uint32Array(rb.getMappedRange(0, steps * S * 4));
      return Array.from({ length: steps }, (_, t) => Int32Array.from(all.subarray(t * S, (t + 1) * S)));
    } finally {
      rb.unmap();
    }
  }

  /** The dispatches of a step of `rows` rows and `seqs` sequences, tagged by kernel (for profiles). */
  plan(rows: number, seqs: number): readonly Dispatch[] {
    const key = rows <= GEMV_MAX_ROWS ? `gemv${rows}` : 'gemm';
    let p = this.plans.get(key);
    if (!p) this.plans.set(key, (p = this.buildPlan(rows <= GEMV_MAX_ROWS ? rows : 0)));
    // Workgroup counts depend on rows/seqs; pipelines and bind groups do not.
    const lm = seqs > GEMV_MAX_ROWS ? 'lm_head' : 'lm_head_gemm';
    return p.filter((d) => d.tag !== lm).map((d) => ({ ...d, wg: this.workgroups(d.tag, rows, seqs) }));
  }

  /** Record a step's dispatches (inputs already written) into `enc`: one compute pass. */
  encode(enc: GPUCommandEncoder, rows: number, seqs: number, only?: (tag: string) => boolean): number {
    const pass = enc.beginComputePass();
    let n = 0;
    let last: GPUComputePipeline | null = null;
    for (const d of this.plan(rows, seqs)) {
      if (only && !only(d.tag)) continue;
      if (d.pipeline !== last) pass.setPipeline((last = d.pipeline));
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.wg[0], d.wg[1]);
      n++;
    }
    pass.end();
    return n;
  }

  /**
   * Writes the step input buffer (rows, positions, row → sequence, sampled rows, block tables) and
   * the token ids with one upload each. `tokens` null: keep the ids already on the device (chained decode).
   */
  writeInputs(seqs: StepSeq[], tokens?: null): { rows: number } {
    const l = this.layout;
    const o = layoutOffsets(l);
    const si = this.siWords;
    if (seqs.length === 0 || seqs.length > l.maxSeqs) throw new ConfigError(`step: ${seqs.length} sequences (1..${l.maxSeqs})`);
    let rows = 0;
    const tok = tokens === undefined ? new Uint32Array(l.maxRows) : null;
    for (const [s, q] of seqs.entries()) {
      const n = q.tokens.length;
      if (n === 0) throw new ConfigError(`step: sequence ${s} has no tokens`);
      if (rows + n > l.maxRows) throw new ConfigError(`step: more than ${l.maxRows} rows`);
      const end = q.start + n;
      const need = Math.ceil(end / l.blockSize);
      if (q.blockTable.length < need) throw new ConfigError(`step: sequence ${s} reaches position ${end - 1} but has ${q.blockTable.length} blocks`);
      if (need > l.maxBlocks) throw new ConfigError(`step: sequence ${s} longer than ${l.maxBlocks * l.blockSize}`);
      for (let i = 0; i < n; i++) {
        si[o.pos + rows + i] = q.start + i;
        si[o.rowSeq + rows + i] = s;
        if (tok) tok[rows + i] = q.tokens[i]!;
      }
      for (let b = 0; b < need; b++) {
        const id = q.blockTable[b]!;
        if (!(id >= 0 && id < this.numBlocks)) throw new ConfigError(`step: block id ${id} outside 0..${this.numBlocks - 1}`);
        si[o.table + s * l.maxBlocks + b] = id;
      }
      rows += n;
      si[o.sample + s] = rows - 1;
    }
    si[0] = rows;
    si[1] = seqs.length;
    const q = this.device.queue;
    q.writeBuffer(this.act.si, 0, si.buffer, si.byteOffset, si.byteLength);
    if (tok) q.writeBuffer(this.act.tok, 0, tok.buffer, 0, rows * 4);
    return { rows };
  }

  /** Release every GPU buffer (and the device when this object requested it). Safe to call twice. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of this.bufs) b.destroy();
    this.bufs.length = 0;
    this.plans.clear();
    this.pipelines.clear();
    this.pending = null;
    this.layers = [];
    if (this.ownDevice) this.device.destroy();
  }

  // ---------------------------------------------------------------------------------------------

  private buffer(size: number, usage: number = U.STORAGE | U.COPY_DST | U.COPY_SRC): GPUBuffer {
    const b = this.device.createBuffer({ size: Math.max(16, Math.ceil(size / 4) * 4), usage });
    this.bufs.push(b);
    return b;
  }

  /** A weight (or several concatenated along rows) as fp32 or packed bf16. */
  private weight(src: TensorSource, names: string[], keepFp32 = false, permuteHeads = 0): GPUBuffer {
    const parts = names.map((n) => {
      const t = src.read(n);
      return permuteHeads ? permuteRotaryRows(t.data as Float32Array, t.shape[1]!, permuteHeads) : (t.data as Float32Array);
    });
    const total = parts.reduce((a, p) => a + p.length, 0);
    const bf16 = this.dtype === 'bfloat16' && !keepFp32;
    const buf = this.buffer(bf16 ? total * 2 : total * 4);
    let off = 0;
    for (const p of parts) {
      const data = bf16 ? packBf16(p) : p;
      this.device.queue.writeBuffer(buf, off, data.buffer, data.byteOffset, data.byteLength);
      off += data.byteLength;
    }
    return buf;
  }

  private upload(src: TensorSource): void {
    const c = this.c;
    const p = (l: number, n: string) => `model.layers.${l}.${n}`;
    this.embed = this.weight(src, ['model.embed_tokens.weight']);
    this.lmHead = c.tieWordEmbeddings || !src.has('lm_head.weight') ? this.embed : this.weight(src, ['lm_head.weight']);
    this.finalNorm = this.weight(src, ['model.norm.weight'], true);
    const slots = this.numBlocks * this.layout.blockSize;
    for (let l = 0; l < c.numHiddenLayers; l++) {
      this.layers.push({
        inNorm: this.weight(src, [p(l, 'input_layernorm.weight')], true),
        postNorm: this.weight(src, [p(l, 'post_attention_layernorm.weight')], true),
        // Rows permuted per head to (0, D/2, 1, D/2 + 1, …): a GEMV workgroup then holds whole rotation pairs.
        qkv: this.weight(src, ['q_proj', 'k_proj', 'v_proj'].map((n) => p(l, `self_attn.${n}.weight`)), false, c.headDim),
        o: this.weight(src, [p(l, 'self_attn.o_proj.weight')]),
        gate: this.weight(src, [p(l, 'mlp.gate_proj.weight')]),
        up: this.weight(src, [p(l, 'mlp.up_proj.weight')]),
        down: this.weight(src, [p(l, 'mlp.down_proj.weight')]),
        kv: this.buffer(2 * slots * c.numKeyValueHeads * c.headDim * 4, U.STORAGE),
      });
    }
    // cos | sin per position, [maxPosition, D] (the half-width cos then sin).
    const half = c.headDim / 2;
    const invFreq = ropeInvFreq(c);
    roundInvFreq(invFreq, c.dtype);
    const P = this.layout.maxBlocks * this.layout.blockSize;
    const [cos, sin] = cosSinTable(invFreq, Int32Array.from({ length: P }, (_, i) => i), 1);
    const cs = new Float32Array(P * c.headDim);
    for (let i = 0; i < P; i++) {
      cs.set(cos.subarray(i * half, (i + 1) * half), i * c.headDim);
      cs.set(sin.subarray(i * half, (i + 1) * half), i * c.headDim + half);
    }
    this.cosSin = this.buffer(cs.byteLength);
    this.device.queue.writeBuffer(this.cosSin, 0, cs);
  }

  private allocate(): void {
    const c = this.c;
    const { maxRows: R, maxSeqs: S } = this.layout;
    const H = c.hiddenSize;
    const W = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim;
    if (S > 64) throw new ConfigError('WebGpuLlamaStep: maxSeqs is at most 64');
    const rbSize = Math.max(LOGITS_AT + S * c.vocabSize * 4, 4096 * 4);
    this.act = {
      x: this.buffer(R * H * 4),
      h: this.buffer(R * H * 4),
      qkv: this.buffer(R * W * 4),
      qr: this.buffer(R * c.numAttentionHeads * c.headDim * 4),
      attn: this.buffer(R * c.numAttentionHeads * c.headDim * 4),
      mlp: this.buffer(R * c.intermediateSize * 4),
      // The LM head GEMV may run on up to 16 rows whatever the sequence count.
      hs: this.buffer(Math.max(S, GEMV_MAX_ROWS) * H * 4),
      logits: this.buffer(Math.max(S, GEMV_MAX_ROWS) * c.vocabSize * 4, U.STORAGE | U.COPY_SRC),
      tok: this.buffer(R * 4, U.STORAGE | U.COPY_DST),
      tokOut: this.buffer(S * 4, U.STORAGE | U.COPY_SRC),
      si: this.buffer(this.siWords.byteLength),
      readback: this.buffer(rbSize, U.MAP_READ | U.COPY_DST),
    };
  }

  private pipeline(code: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module: this.device.createShaderModule({ code }), entryPoint: 'main' } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  private bind(pipeline: GPUComputePipeline, buffers: GPUBuffer[]): GPUBindGroup {
    return this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  }

  /** gemvRows 1..16: the GEMV kernels specialised for that many rows; 0: the tiled GEMM. */
  private buildPlan(gemvRows: number): Dispatch[] {
    const c = this.c;
    const l = this.layout;
    const a = this.act;
    const dt = this.dtype;
    const H = c.hiddenSize;
    const I = c.intermediateSize;
    const D = c.headDim;
    const W = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * D;
    const slots = this.numBlocks * l.blockSize;
    const dims = { heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: D, maxPosition: l.maxBlocks * l.blockSize };
    const out: Dispatch[] = [];
    const add = (tag: string, code: string, buffers: GPUBuffer[]) => {
      const pipeline = this.pipeline(code);
      out.push({ tag, pipeline, bindGroup: this.bind(pipeline, buffers), wg: [1, 1] });
    };
    const eps = c.rmsNormEps;
    const ropeKv = { attn: dims, numSlots: slots, layout: l };
    add('embed', embedWgsl(H, dt, l), [a.tok, this.embed, a.x, a.si]);
    for (const L of this.layers) {
      if (gemvRows) {
        add('qkv_norm_rope_kv', gemvWgsl(gemvRows, H, W, dt, { normEps: eps, epilogue: 'ropeKv', ropeKv }), [a.x, a.qr, L.qkv, L.inNorm, a.si, this.cosSin, L.kv]);
      } else {
        add('rmsnorm', rmsNormWgsl(H, eps, false, false, l), [a.x, L.inNorm, a.h, a.si]);
        add('qkv', gemmWgsl(H, W, dt, false, l), [a.h, a.qkv, a.si, L.qkv]);
        add('rope_kv', ropeKvWgsl(dims, slots, l), [a.si, a.qkv, L.kv, this.cosSin, a.qr]);
      }
      if (gemvRows) add('attention', attentionWgsl(dims, slots, l), [a.si, a.qr, L.kv, L.kv, a.attn]);
      else add('attention_gqa', attentionGqaWgsl(dims, slots, l), [a.si, a.qr, L.kv, a.attn]);
      if (gemvRows) {
        add('o_proj_residual', gemvWgsl(gemvRows, c.numAttentionHeads * D, H, dt, { epilogue: 'add' }), [a.attn, a.x, L.o]);
        add('norm_gate_up_silu', gemvWgsl(gemvRows, H, I, dt, { normEps: eps, gateUp: true, epilogue: 'store' }), [a.x, a.mlp, L.gate, L.up, L.postNorm]);
        add('down_residual', gemvWgsl(gemvRows, I, H, dt, { epilogue: 'add' }), [a.mlp, a.x, L.down]);
      } else {
        add('o_proj_residual', gemmWgsl(c.numAttentionHeads * D, H, dt, false, l, true), [a.attn, a.x, a.si, L.o]);
        add('rmsnorm', rmsNormWgsl(H, eps, false, false, l), [a.x, L.postNorm, a.h, a.si]);
        add('gate_up_silu', gemmWgsl(H, I, dt, true, l), [a.h, a.mlp, a.si, L.gate, L.up]);
        add('down_residual', gemmWgsl(I, H, dt, false, l, true), [a.mlp, a.x, a.si, L.down]);
      }
    }
    add('final_norm', rmsNormWgsl(H, eps, false, true, l), [a.x, this.finalNorm, a.hs, a.si]);
    // The LM head runs on the sampled rows only (one per sequence): a GEMV up to 16 of them, else the GEMM.
    add('lm_head', gemvWgsl(gemvRows || GEMV_MAX_ROWS, H, c.vocabSize, dt), [a.hs, a.logits, this.lmHead]);
    if (!gemvRows) add('lm_head_gemm', gemmWgsl(H, c.vocabSize, dt, false, l, false, true), [a.hs, a.logits, a.si, this.lmHead]);
    add('argmax', argmaxWgsl(c.vocabSize, l), [a.si, a.logits, a.tokOut]);
    return out;
  }

  private workgroups(tag: string, rows: number, seqs: number): [number, number] {
    const c = this.c;
    const H = c.hiddenSize;
    const D = c.headDim;
    const W = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * D;
    const gemv = rows <= GEMV_MAX_ROWS;
    const mm = (n: number): [number, number] => (gemv ? split(Math.ceil(n / gemvRowsPerWg(rows))) : [Math.ceil(n / GEMM_TILE), Math.ceil(rows / GEMM_TILE)]);
    switch (tag) {
      case 'embed':
      case 'rmsnorm':
        return [rows, 1];
      case 'qkv':
      case 'qkv_norm_rope_kv':
        return mm(W);
      case 'rope_kv':
        return split(Math.ceil((rows * (W / 2)) / 256));
      case 'attention':
        return [c.numAttentionHeads, rows];
      case 'attention_gqa':
        return [c.numKeyValueHeads, rows];
      case 'o_proj_residual':
      case 'down_residual':
        return mm(H);
      case 'gate_up_silu':
      case 'norm_gate_up_silu':
        return mm(c.intermediateSize);
      case 'final_norm':
      case 'argmax':
        return [seqs, 1];
      case 'lm_head':
        return split(Math.ceil(c.vocabSize / gemvRowsPerWg(gemv ? rows : GEMV_MAX_ROWS)));
      case 'lm_head_gemm':
        return [Math.ceil(c.vocabSize / GEMM_TILE), Math.ceil(seqs / GEMM_TILE)];
      default:
        throw new Error(`unknown dispatch ${tag}`);
    }
  }
}

function split(n: number): [number, number] {
  return n <= 65535 ? [n, 1] : [65535, Math.ceil(n / 65535)];
}

/** Why this config cannot run on the step (null when it can). */
export function unsupported(c: LlamaConfig): string | null {
  if (c.family !== 'llama') return `family ${String((c as { family: string }).family)} (Llama only)`;
  if (c.modelType !== 'llama' && c.modelType !== 'mistral') return `model_type ${c.modelType} (Llama and Mistral only)`;
  if (c.attentionBias || c.mlpBias) return 'attention/MLP biases';
  if (c.hiddenAct !== 'silu') return `hidden_act ${c.hiddenAct}`;
  if (c.slidingWindow !== null) return 'sliding-window attention';
  const D = c.headDim;
  if (D % 4 !== 0 || 256 % D !== 0) return `head_dim ${D} (must divide 256, multiple of 4)`;
  if (c.hiddenSize % 8 !== 0 || c.intermediateSize % 8 !== 0) return 'hidden and intermediate sizes must be multiples of 8';
  if ((c.numAttentionHeads * D) % 8 !== 0) return 'heads·head_dim must be a multiple of 8';
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0) return 'heads not a multiple of KV heads';
  const t = c.rope.type ?? 'default';
  if (!['default', 'linear', 'llama3'].includes(t)) return `rope type ${t}`;
  return null;
}

function ropeInvFreq(c: LlamaConfig): Float32Array {
  const r = c.rope as unknown as { type?: string; theta: number; factor?: number; lowFreqFactor?: number; highFreqFactor?: number; originalMaxPositionEmbeddings?: number };
  const D = c.headDim;
  switch (r.type ?? 'default') {
    case 'linear':
      return linearInvFreq(r.theta, D, r.factor!);
    case 'llama3':
      return llama3InvFreq(r.theta, D, {
        factor: r.factor!,
        lowFreqFactor: r.lowFreqFactor!,
        highFreqFactor: r.highFreqFactor!,
        originalMaxPositionEmbeddings: r.originalMaxPositionEmbeddings!,
      });
    default:
      return defaultInvFreq(r.theta, D);
  }
}

/** Rows of `w [rows, cols]` reordered within each head of `d` rows to (0, d/2, 1, d/2 + 1, …). */
export function permuteRotaryRows(w: Float32Array, cols: number, d: number): Float32Array {
  const rows = w.length / cols;
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const head = Math.floor(r / d);
    const j = r % d;
    const src = head * d + (j % 2 === 0 ? j / 2 : d / 2 + (j - 1) / 2);
    out.set(w.subarray(src * cols, (src + 1) * cols), r * cols);
  }
  return out;
}

/** fp32 → bf16 (round to nearest even), two per u32 (element 2i in the low half). */
export function packBf16(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length + (x.length & 1));
  for (let i = 0; i < x.length; i++) {
    const b = bits[i]!;
    out[i] = (b & 0x7f800000) === 0x7f800000 ? b >>> 16 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

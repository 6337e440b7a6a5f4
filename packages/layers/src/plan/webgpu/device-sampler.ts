/// <reference types="@webgpu/types" />
/**
 * The WebGPU executor's sampler (wgsl-sampling.ts): its buffers (per-row
 * parameters and logit additions, written each step; per-row key and weight scratch; the history
 * slots penalties read, kept on the device between steps), its one kernel
 * (after the greedy argmax, in the step's last command buffer), and its
 * results: token ids and the requested logprobs, copied into the step's
 * read-back buffer instead of the logits rows.
 */
import { ConfigError } from '@weft/core';
import type { PlanAct } from '../ops.js';
import { DEVICE_MAX_BIAS, DEVICE_MAX_LOGPROBS, type RowSampled, type RowSampling } from '../row-sampling.js';
import { BUF } from './device.js';
import type { Kernel } from './plan-kernels.js';
import { FLAG, OUT_WORDS, PARAM_WORDS, SAMPLING_SHARED_BYTES, samplingWgsl, type SamplingBuffers } from './wgsl-sampling.js';

export interface DeviceSamplerOptions {
  /** The sampled rows' logits (`[maxSeqs, width]`, the first `vocab` columns real). */
  logits: PlanAct;
  vocab: number;
  maxSeqs: number;
  /** Sequences with penalties whose history the device can hold at once. */
  slots: number;
}

export class DeviceSampler {
  readonly kernel: Kernel;
  readonly slots: number;
  private readonly buf: SamplingBuffers;
  private readonly words: Uint32Array;
  private readonly floats: Float32Array;
  /** (id, f32 addition) pairs of every row. */
  private readonly bias: Uint32Array;
  private readonly biasF: Float32Array;
  private rows: readonly (RowSampling | null)[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly o: DeviceSamplerOptions,
  ) {
    if (device.limits.maxComputeWorkgroupStorageSize < SAMPLING_SHARED_BYTES) {
      throw new ConfigError(`webgpu sampler: needs ${SAMPLING_SHARED_BYTES} bytes of workgroup memory, the device has ${device.limits.maxComputeWorkgroupStorageSize}`);
    }
    const { vocab: V, maxSeqs, slots } = o;
    this.slots = slots;
    const mk = (bytes: number, usage: number, label: string) => device.createBuffer({ size: Math.max(16, bytes), usage, label });
    this.buf = {
      params: mk(maxSeqs * PARAM_WORDS * 4, BUF.STORAGE | BUF.COPY_DST, 'sampling params'),
      bias: mk(maxSeqs * DEVICE_MAX_BIAS * 8, BUF.STORAGE | BUF.COPY_DST, 'logit additions'),
      out: mk(maxSeqs * OUT_WORDS * 4, BUF.STORAGE | BUF.COPY_SRC, 'sampled'),
      keys: mk(maxSeqs * V * 4, BUF.STORAGE, 'sampling keys'),
      weights: mk(maxSeqs * V * 8, BUF.STORAGE, 'sampling weights'),
      counts: mk(slots * V * 4, BUF.STORAGE | BUF.COPY_DST, 'output counts'),
      prompt: mk(slots * Math.ceil(V / 32) * 4, BUF.STORAGE | BUF.COPY_DST, 'prompt tokens'),
    };
    this.words = new Uint32Array(maxSeqs * PARAM_WORDS);
    this.floats = new Float32Array(this.words.buffer);
    this.bias = new Uint32Array(maxSeqs * DEVICE_MAX_BIAS * 2);
    this.biasF = new Float32Array(this.bias.buffer);
    this.kernel = {
      tag: 'sample',
      variant: () => '',
      code: (b) => samplingWgsl(b, o.logits, V, this.buf),
      workgroups: ({ S }) => (S > 0 && this.rows.some((r) => r !== null) ? [S, 1] : null),
    };
  }

  /** Bytes of the results in the read-back buffer (room for `maxRows` rows). */
  static outBytes(maxRows: number): number {
    return maxRows * OUT_WORDS * 4;
  }

  /**
   * The step's rows (null: not sampled here) → parameters and any history uploads written; returns a key
   * for the step's command buffer (the kernel runs only when a row samples).
   */
  prepare(rows: readonly (RowSampling | null)[] | undefined, S: number): string {
    this.rows = rows?.slice(0, S) ?? [];
    if (!this.rows.some((r) => r !== null)) return '';
    const V = this.o.vocab;
    this.words.fill(0, 0, S * PARAM_WORDS);
    let biased = 0;
    this.rows.forEach((r, i) => {
      if (!r) return;
      this.write(i * PARAM_WORDS, r, V);
      if (!r.bias.length) return;
      this.writeBias(i, r.bias, V);
      biased = i + 1;
    });
    this.device.queue.writeBuffer(this.buf.params, 0, this.words.buffer, 0, S * PARAM_WORDS * 4);
    if (biased) this.device.queue.writeBuffer(this.buf.bias, 0, this.bias.buffer, 0, biased * DEVICE_MAX_BIAS * 8);
    return 's';
  }

  private write(at: number, r: RowSampling, V: number): void {
    const w = this.words;
    const f = this.floats;
    const greedy = r.temperature <= 1e-5;
    const topK = r.topK > 0 && r.topK < V;
    const topP = r.topP < 1;
    if (r.logprobs !== null && !(r.logprobs >= 0 && r.logprobs <= DEVICE_MAX_LOGPROBS)) throw new ConfigError(`webgpu sampler: logprobs ${r.logprobs} outside 0..${DEVICE_MAX_LOGPROBS}`);
    if (r.slot !== null && !(Number.isInteger(r.slot) && r.slot >= 0 && r.slot < this.slots)) throw new ConfigError(`webgpu sampler: history slot ${r.slot} outside 0..${this.slots - 1}`);
    const flags =
      (greedy ? FLAG.greedy : 0) |
      (!topK && !topP ? FLAG.indexOrder : 0) |
      (r.logprobs !== null ? FLAG.logprob : 0) |
      (r.slot !== null ? FLAG.penalties : 0) |
      (r.minP > 0 ? FLAG.minP : 0) |
      (topP ? FLAG.topP : 0) |
      (topK ? FLAG.topK : 0);
    w[at] = 1;
    w[at + 1] = flags;
    w[at + 2] = topK ? r.topK : 0;
    // The top-p share of the mass as a 32-bit fraction (the kernel's sums are fixed point).
    w[at + 3] = topP ? Math.min(Math.floor(r.topP * 2 ** 32), 2 ** 32 - 1) : 0;
    f[at + 4] = r.minP > 0 ? Math.log(r.minP) * r.temperature : 0;
    f[at + 5] = greedy ? 0 : 1 / r.temperature;
    w[at + 6] = r.seed >>> 0;
    w[at + 7] = r.counter >>> 0;
    f[at + 8] = r.repetitionPenalty;
    f[at + 9] = r.presencePenalty;
    f[at + 10] = r.frequencyPenalty;
    w[at + 11] = r.slot ?? 0xffffffff;
    w[at + 12] = Math.min(r.logprobs ?? 0, V);
    w[at + 13] = r.bias.length;
    if (r.slot !== null && r.history) this.upload(r.slot, r.history, V);
  }

  private writeBias(row: number, bias: RowSampling['bias'], V: number): void {
    if (bias.length > DEVICE_MAX_BIAS) throw new ConfigError(`webgpu sampler: ${bias.length} logit additions, at most ${DEVICE_MAX_BIAS}`);
    const at = row * DEVICE_MAX_BIAS * 2;
    const seen = new Set<number>();
    bias.forEach(([id, add], j) => {
      if (!(Number.isInteger(id) && id >= 0 && id < V) || seen.has(id)) throw new ConfigError(`webgpu sampler: logit addition for token ${id}: ids must be unique and in [0, ${V})`);
      seen.add(id);
      this.bias[at + 2 * j] = id;
      this.biasF[at + 2 * j + 1] = add;
    });
  }

  /** A slot's history: output counts and the prompt bitmask, replacing what it held. */
  private upload(slot: number, h: NonNullable<RowSampling['history']>, V: number): void {
    const counts = new Uint32Array(V);
    for (const [t, c] of h.output) if (t >= 0 && t < V) counts[t] = c;
    const mask = new Uint32Array(Math.ceil(V / 32));
    for (const t of h.prompt) if (t >= 0 && t < V) mask[t >> 5] = mask[t >> 5]! | (1 << (t & 31));
    this.device.queue.writeBuffer(this.buf.counts, slot * V * 4, counts);
    this.device.queue.writeBuffer(this.buf.prompt, slot * mask.byteLength, mask);
  }

  /** Copy this step's results (when a row sampled) to `at` in the read-back buffer. */
  copy(enc: GPUCommandEncoder, readback: GPUBuffer, at: number, S: number): void {
    if (this.rows.some((r) => r !== null)) enc.copyBufferToBuffer(this.buf.out, 0, readback, at, S * OUT_WORDS * 4);
  }

  /** The results of the rows that sampled, from the mapped read-back range at the copy's offset. */
  read(mapped: ArrayBuffer, S: number): (RowSampled | null)[] | null {
    if (!this.rows.some((r) => r !== null)) return null;
    const u = new Uint32Array(mapped, 0, S * OUT_WORDS);
    const f = new Float32Array(mapped, 0, S * OUT_WORDS);
    return this.rows.map((r, i) => {
      if (!r) return null;
      const at = i * OUT_WORDS;
      const n = Math.min(r.logprobs ?? 0, this.o.vocab);
      const top = Array.from({ length: n }, (_, j) => ({ tokenId: u[at + 2 + 2 * j]!, logprob: f[at + 3 + 2 * j]! }));
      return { tokenId: u[at]!, logprob: r.logprobs !== null ? f[at + 1]! : null, top };
    });
  }

  destroy(): void {
    for (const b of Object.values(this.buf)) b.destroy();
  }
}

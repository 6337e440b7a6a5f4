/// <reference types="@webgpu/types" />
/**
 * The device sampler on logits rows given by the host, outside a plan: what
 * the engine's test runs against its host sampler (the executor runs the same
 * kernel on the step's logits). A sampler keeps its history slots between
 * calls, as between steps.
 */
import type { PlanAct } from '../ops.js';
import type { RowSampled, RowSampling } from '../row-sampling.js';
import { BUF, MAP_READ_MODE } from './device.js';
import { DeviceSampler } from './device-sampler.js';
import { KernelRecorder } from './kernel-recorder.js';
import { layoutOffsets, type StepLayout } from './wgsl-common.js';

export class RowSampler {
  private readonly sampler: DeviceSampler;
  private readonly logits: GPUBuffer;
  private readonly si: GPUBuffer;
  private readonly readback: GPUBuffer;
  private readonly recorder: KernelRecorder;
  private readonly layout: StepLayout;

  constructor(
    private readonly device: GPUDevice,
    private readonly vocab: number,
    private readonly maxSeqs: number,
    slots: number,
  ) {
    const act: PlanAct = { id: 0, name: 'logits', width: vocab, rows: 'sampled' };
    this.logits = device.createBuffer({ size: maxSeqs * vocab * 4, usage: BUF.STORAGE | BUF.COPY_DST, label: 'logits' });
    this.sampler = new DeviceSampler(device, { logits: act, vocab, maxSeqs, slots });
    this.layout = { maxRows: maxSeqs, maxSeqs, maxBlocks: 1, blockSize: 1 };
    this.si = device.createBuffer({ size: layoutOffsets(this.layout).words * 4, usage: BUF.STORAGE | BUF.COPY_DST, label: 'si' });
    this.readback = device.createBuffer({ size: DeviceSampler.outBytes(maxSeqs), usage: BUF.MAP_READ | BUF.COPY_DST, label: 'readback' });
    this.recorder = new KernelRecorder(device, () => this.logits);
  }

  /** Sample `rows` (one per logits row of `vocab` floats; null: skipped). */
  async sample(logits: readonly Float32Array[], rows: readonly (RowSampling | null)[]): Promise<(RowSampled | null)[]> {
    const S = logits.length;
    if (S < 1 || S > this.maxSeqs || rows.length !== S) throw new RangeError(`row sampler: ${S} rows (${rows.length} parameter sets) for at most ${this.maxSeqs}`);
    const flat = new Float32Array(S * this.vocab);
    logits.forEach((r, i) => flat.set(r.subarray(0, this.vocab), i * this.vocab));
    this.device.queue.writeBuffer(this.logits, 0, flat);
    this.device.queue.writeBuffer(this.si, 0, Uint32Array.of(S, S));
    this.sampler.prepare(rows, S);
    const enc = this.device.createCommandEncoder();
    this.recorder.encode(enc, [this.sampler.kernel], { T: S, S, decode: true }, this.si, this.layout);
    this.sampler.copy(enc, this.readback, 0, S);
    this.device.queue.submit([enc.finish()]);
    await this.readback.mapAsync(MAP_READ_MODE);
    try {
      const got = this.sampler.read(this.readback.getMappedRange().slice(0), S);
      this.recorder.throwErrors();
      return got ?? rows.map(() => null);
    } finally {
      this.readback.unmap();
    }
  }

  destroy(): void {
    this.sampler.destroy();
    for (const b of [this.logits, this.si, this.readback]) b.destroy();
  }
}

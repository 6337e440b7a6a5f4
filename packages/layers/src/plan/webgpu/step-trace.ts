/// <reference types="@webgpu/types" />
/**
 * A step of the WebGPU executor timed end to end (benches; executor option `trace`): host marks at the
 * step's start, after its inputs are written, after the submit, after the next step's command buffer is
 * recorded, when `onSubmittedWorkDone` resolves and when the read-back is mapped; and, where the device has
 * 'timestamp-query', the GPU's own clock at the beginning and end of the step's last compute pass (each
 * recorded command buffer takes a slot of a ring of query pairs, resolved into its slot of one buffer).
 */
import { BUF, MAP_READ_MODE } from './device.js';

/** Host times (ms, `performance.now()`) of one step; GPU times (ns of the GPU's clock) once `read()`. */
export interface StepTiming {
  rows: number;
  start: number;
  written: number;
  submitted: number;
  /** The next step's command buffer recorded (NaN: not recorded ahead). */
  recorded: number;
  /** ms the host slept before awaiting the read-back (gpu-wait.ts; 0: none). */
  slept: number;
  done: number;
  mapped: number;
  end: number;
  /** Timestamp slot of the step's command buffer (−1: none). */
  slot: number;
  gpuBegin?: number;
  gpuEnd?: number;
}

const SLOT_BYTES = 256;

export class StepTrace {
  readonly steps: StepTiming[] = [];
  private readonly querySet: GPUQuerySet | null;
  private readonly resolved: GPUBuffer | null;
  private next = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly capacity = 512,
  ) {
    const ts = device.features.has('timestamp-query');
    this.querySet = ts ? device.createQuerySet({ type: 'timestamp', count: 2 * capacity }) : null;
    this.resolved = ts ? device.createBuffer({ size: capacity * SLOT_BYTES, usage: 0x200 /* QUERY_RESOLVE */ | BUF.COPY_SRC }) : null;
  }

  get timestamps(): boolean {
    return this.querySet !== null;
  }

  /** A slot for a command buffer being recorded (−1 without timestamps). */
  take(): number {
    if (!this.querySet) return -1;
    return this.next++ % this.capacity;
  }

  /** The pass's timestamp writes into `slot`: both, or only its begin (the first of several passes) or end (the last). */
  passWrites(slot: number, which: 'both' | 'begin' | 'end' = 'both'): GPUComputePassTimestampWrites | undefined {
    if (!this.querySet || slot < 0) return undefined;
    return {
      querySet: this.querySet,
      ...(which !== 'end' ? { beginningOfPassWriteIndex: 2 * slot } : {}),
      ...(which !== 'begin' ? { endOfPassWriteIndex: 2 * slot + 1 } : {}),
    };
  }

  /** After the slot's pass: its two timestamps into the slot's place in the resolve buffer. */
  resolve(enc: GPUCommandEncoder, slot: number): void {
    if (this.querySet && slot >= 0) enc.resolveQuerySet(this.querySet, 2 * slot, 2, this.resolved!, slot * SLOT_BYTES);
  }

  begin(rows: number): StepTiming {
    const t = performance.now();
    const s: StepTiming = { rows, start: t, written: NaN, submitted: NaN, recorded: NaN, slept: 0, done: NaN, mapped: NaN, end: NaN, slot: -1 };
    this.steps.push(s);
    return s;
  }

  /** Fill each step's GPU begin/end from the resolved slots (steps whose slot was reused since read wrong: keep runs under `capacity`). */
  async read(): Promise<StepTiming[]> {
    if (!this.resolved) return this.steps;
    const rb = this.device.createBuffer({ size: this.capacity * SLOT_BYTES, usage: BUF.MAP_READ | BUF.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(this.resolved, 0, rb, 0, this.capacity * SLOT_BYTES);
    this.device.queue.submit([enc.finish()]);
    await rb.mapAsync(MAP_READ_MODE);
    const v = new BigUint64Array(rb.getMappedRange().slice(0));
    rb.unmap();
    rb.destroy();
    for (const s of this.steps) {
      if (s.slot < 0) continue;
      s.gpuBegin = Number(v[(s.slot * SLOT_BYTES) / 8]!);
      s.gpuEnd = Number(v[(s.slot * SLOT_BYTES) / 8 + 1]!);
    }
    return this.steps;
  }

  clear(): void {
    this.steps.length = 0;
  }

  destroy(): void {
    this.querySet?.destroy();
    this.resolved?.destroy();
  }
}

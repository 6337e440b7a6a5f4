/// <reference types="@webgpu/types" />
/**
 * What a step hands back, through the executor's one read-back buffer: the
 * greedy ids (256 bytes: up to 64 sampled rows), what the device sampler drew
 * (token ids and requested logprobs, room for 64 rows), then the logits rows
 * asked for (room for maxSeqs rows), then a pipeline stage's hidden and
 * residual (room for maxRows rows each). The copies go at the end of the
 * step's last command buffer; one map reads them all.
 */
import type { DevicePlan } from '../builder.js';
import type { PlanStepOutput } from '../executor.js';
import type { PlanAct } from '../ops.js';
import { MAP_READ_MODE } from './device.js';
import { DeviceSampler } from './device-sampler.js';

/** Bytes of the greedy ids at the start of the read-back buffer. */
export const IDS_BYTES = 256;
/** Bytes before the logits rows: the greedy ids, then the device sampler's results. */
export const HEAD_BYTES = IDS_BYTES + DeviceSampler.outBytes(IDS_BYTES / 4);

export interface OutputLayout {
  outputs: DevicePlan['outputs'];
  maxRows: number;
  maxSeqs: number;
  /** The executor's sampler (a plan with logits). */
  sampler: DeviceSampler | null;
}

export interface StepOutputs {
  T: number;
  S: number;
  /** This rank holds the logits (false on ranks a gather left without them). */
  holdsLogits: boolean;
  rowsAsked: readonly boolean[];
}

export function copyOutputs(enc: GPUCommandEncoder, l: OutputLayout, s: StepOutputs, ids: GPUBuffer, actBuffer: (a: PlanAct) => GPUBuffer, readback: GPUBuffer): void {
  const o = l.outputs;
  let at = HEAD_BYTES;
  if (o.logits) {
    const rowBytes = o.logits.width * 4;
    if (s.holdsLogits) {
      enc.copyBufferToBuffer(ids, 0, readback, 0, s.S * 4);
      l.sampler?.copy(enc, readback, IDS_BYTES, s.S);
      // Runs of asked rows, one copy each.
      for (let r = 0; r < s.S; ) {
        if (!s.rowsAsked[r]) {
          r++;
          continue;
        }
        let e = r;
        while (e < s.S && s.rowsAsked[e]) e++;
        enc.copyBufferToBuffer(actBuffer(o.logits), r * rowBytes, readback, at + r * rowBytes, (e - r) * rowBytes);
        r = e;
      }
    }
    at += l.maxSeqs * rowBytes;
  }
  for (const a of [o.hidden, o.residual]) {
    if (!a) continue;
    enc.copyBufferToBuffer(actBuffer(a), 0, readback, at, s.T * a.width * 4);
    at += l.maxRows * a.width * 4;
  }
}

export async function readOutputs(readback: GPUBuffer, l: OutputLayout, s: StepOutputs): Promise<PlanStepOutput> {
  await readback.mapAsync(MAP_READ_MODE);
  try {
    const o = l.outputs;
    const out: PlanStepOutput = { logits: null, greedy: null, hidden: null, residual: null };
    let at = HEAD_BYTES;
    if (o.logits) {
      if (s.holdsLogits) {
        out.greedy = Int32Array.from(new Uint32Array(readback.getMappedRange(0, Math.max(4, s.S * 4)).slice(0, s.S * 4)));
        const sampled = l.sampler?.read(readback.getMappedRange(IDS_BYTES, HEAD_BYTES - IDS_BYTES).slice(0), s.S);
        if (sampled) out.sampled = sampled;
        if (s.rowsAsked.some(Boolean)) out.logits = new Float32Array(readback.getMappedRange(at, s.S * o.logits.width * 4).slice(0));
      }
      at += l.maxSeqs * o.logits.width * 4;
    }
    if (o.hidden) {
      out.hidden = new Float32Array(readback.getMappedRange(at, s.T * o.hidden.width * 4).slice(0));
      at += l.maxRows * o.hidden.width * 4;
    }
    if (o.residual) out.residual = new Float32Array(readback.getMappedRange(at, s.T * o.residual.width * 4).slice(0));
    return out;
  } finally {
    readback.unmap();
  }
}

/// <reference types="@webgpu/types" />
/**
 * A step's inputs on the device, checked and written with one upload each:
 * `si` (rows, sequences, token ids, positions, row → sequence, sampled rows,
 * block tables; layout in wgsl-common.ts) and, per rotary table, the cos|sin
 * rows of the step's positions computed exactly as the tfjs path computes
 * them (`cosSinTable`; dynamic NTK from the step's longest position).
 */
import { ConfigError } from '@weft/core';
import type { SeqMetadata } from '../../attention-metadata.js';
import { dynamicNtkInvFreq } from '../../rotary/frequencies.js';
import { cosSinTable, type RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import type { PlanStepInput } from '../executor.js';
import { layoutOffsets, type StepLayout } from './wgsl-common.js';

export interface StepBounds {
  layout: StepLayout;
  numBlocks: number;
  maxModelLen: number;
  /** Every attention layer windowed: the widest window (blocks wholly before it may be −1); else null. */
  window: number | null;
  /** The plan embeds token ids (first stage). */
  embeds: boolean;
}

/** Fill `words` (the host copy of `si`) from `input` and upload it. */
export function writeStepBuffer(device: GPUDevice, si: GPUBuffer, words: Uint32Array, input: PlanStepInput, b: StepBounds): void {
  const l = b.layout;
  const o = layoutOffsets(l);
  const T = input.positions.length;
  const S = input.sampledRows.length;
  if (T > l.maxRows) throw new ConfigError(`webgpu plan: ${T} rows in a step, at most maxRows ${l.maxRows}`);
  if (S > l.maxSeqs || input.seqs.length > l.maxSeqs) throw new ConfigError(`webgpu plan: ${Math.max(S, input.seqs.length)} sequences in a step, at most maxSeqs ${l.maxSeqs}`);
  if (input.blockSize !== l.blockSize) throw new ConfigError(`webgpu plan: step blockSize ${input.blockSize}, caches made for ${l.blockSize}`);
  if (b.embeds && input.tokenIds.length !== T) throw new ConfigError(`webgpu plan: ${input.tokenIds.length} token ids for ${T} positions`);
  words[0] = T;
  words[1] = S;
  if (b.embeds) words.set(new Uint32Array(input.tokenIds.buffer, input.tokenIds.byteOffset, T), o.tok);
  words.set(new Uint32Array(input.positions.buffer, input.positions.byteOffset, T), o.pos);
  const seen = new Uint8Array(T);
  let at = 0;
  for (const [s, q] of input.seqs.entries()) {
    words[o.tableStart + s] = at;
    at += writeSeq(words, b, s, q, seen, o.table + at);
  }
  if (seen.some((x) => !x)) throw new ConfigError('webgpu plan: the sequences do not cover every row of the step');
  for (const [i, r] of input.sampledRows.entries()) {
    if (!(r >= 0 && r < T)) throw new ConfigError(`webgpu plan: sampled row ${r} outside 0..${T - 1}`);
    words[o.sample + i] = r;
  }
  device.queue.writeBuffer(si, 0, words.buffer, 0, (o.table + at) * 4);
}

/** Sequence s's rows and its block table at `tableAt`; returns the table entries written. */
function writeSeq(words: Uint32Array, b: StepBounds, s: number, q: SeqMetadata, seen: Uint8Array, tableAt: number): number {
  const l = b.layout;
  const o = layoutOffsets(l);
  const end = q.contextLen + q.queryLen;
  const need = Math.ceil(end / l.blockSize);
  if (need > l.maxBlocks) throw new ConfigError(`webgpu plan: sequence ${q.seqId} reaches position ${end - 1}, beyond maxModelLen ${b.maxModelLen}`);
  if (q.blockTable.length < need) throw new ConfigError(`webgpu plan: sequence ${q.seqId} reaches position ${end - 1} but has ${q.blockTable.length} blocks of ${l.blockSize}`);
  // Blocks wholly before every layer's window may be freed (−1): the kernels never read them.
  const first = b.window === null ? 0 : Math.floor(Math.max(0, q.contextLen - b.window + 1) / l.blockSize);
  for (let k = 0; k < need; k++) {
    const id = q.blockTable[k]!;
    if (k >= first && !(Number.isInteger(id) && id >= 0 && id < b.numBlocks)) throw new ConfigError(`webgpu plan: sequence ${q.seqId} block ${k} is ${id}, outside 0..${b.numBlocks - 1}`);
    words[tableAt + k] = id >>> 0;
  }
  for (let i = 0; i < q.queryLen; i++) {
    const r = q.start + i;
    if (r >= seen.length || seen[r]) throw new ConfigError(`webgpu plan: sequence ${q.seqId} rows ${q.start}..${q.start + q.queryLen - 1} overlap or exceed the step`);
    seen[r] = 1;
    words[o.rowSeq + r] = s;
  }
  return need;
}

/** Each rotary table's `[T, cos (rotaryDim/2) | sin (rotaryDim/2)]` rows at the step's positions. */
export function writeCosSin(device: GPUDevice, ropes: ReadonlyMap<RotaryEmbedding, GPUBuffer>, positions: Int32Array): void {
  const T = positions.length;
  let end = 0;
  for (let i = 0; i < T; i++) end = Math.max(end, positions[i]! + 1);
  for (const [rope, buf] of ropes) {
    const half = rope.rotaryDim / 2;
    // HF's dynamic NTK rescales the frequencies from the longest position in the forward (RotaryEmbedding.cosSin).
    const [cos, sin] =
      rope.type === 'dynamic' && end > rope.maxPosition
        ? cosSinTable(dynamicNtkInvFreq(rope.base, rope.rotaryDim, rope.scaling?.factor ?? 1, rope.maxPosition, end), positions, 1)
        : cosSinTable(rope.invFreq, positions, rope.attentionScaling);
    const cs = new Float32Array(T * rope.rotaryDim);
    for (let t = 0; t < T; t++) {
      cs.set(cos.subarray(t * half, (t + 1) * half), t * rope.rotaryDim);
      cs.set(sin.subarray(t * half, (t + 1) * half), t * rope.rotaryDim + half);
    }
    device.queue.writeBuffer(buf, 0, cs);
  }
}

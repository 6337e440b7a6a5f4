/// <reference types="@webgpu/types" />
/**
 * What every WGSL kernel of the plan executor shares: the step input buffer
 * `si` (rows, sequences, token ids, positions, row → sequence, sampled rows,
 * block tables; written once per step), the weight decoders (bf16 pairs,
 * fp16 block scales, Q8_0 bytes, Q4_0 nibbles: `WEIGHT_FNS`) and `Binder`, which gives each
 * distinct buffer one binding (an activation read and written by one op is
 * bound once, read-write: WebGPU refuses a writable buffer bound twice).
 * Model dimensions and column offsets are baked into each shader as
 * constants; only the step's shape and positions come from `si`.
 */
import type { PlanAct } from '../ops.js';

/** Capacities of a step, fixed when the caches are made. */
export interface StepLayout {
  maxRows: number;
  maxSeqs: number;
  /** Block-table entries per sequence. */
  maxBlocks: number;
  blockSize: number;
}

/**
 * u32 offsets in `si`: [T, S, 0, 0], tokens [maxRows], positions [maxRows], rowSeq [maxRows], sampled rows
 * [maxSeqs], each sequence's first table entry [maxSeqs], then the step's block tables back to back (room for
 * maxSeqs · maxBlocks; a step uploads only the entries it has).
 */
export function layoutOffsets(l: StepLayout): { tok: number; pos: number; rowSeq: number; sample: number; tableStart: number; table: number; words: number } {
  const tok = 4;
  const pos = tok + l.maxRows;
  const rowSeq = pos + l.maxRows;
  const sample = rowSeq + l.maxRows;
  const tableStart = sample + l.maxSeqs;
  const table = tableStart + l.maxSeqs;
  return { tok, pos, rowSeq, sample, tableStart, table, words: table + l.maxSeqs * l.maxBlocks };
}

/** `si` declarations: `ROWS()` (T), `SEQS()` (S), `TOK`, `POS`, `ROWSEQ`, `SAMPLE`, `blockOf(seq, p)`. */
export function siDecl(binding: number, l: StepLayout): string {
  const o = layoutOffsets(l);
  return `@group(0) @binding(${binding}) var<storage, read> si : array<u32>;
const TOK = ${o.tok}u;
const POS = ${o.pos}u;
const ROWSEQ = ${o.rowSeq}u;
const SAMPLE = ${o.sample}u;
const TSTART = ${o.tableStart}u;
const TABLE = ${o.table}u;
const BS = ${l.blockSize}u;
fn blockOf(seq : u32, p : u32) -> u32 { return si[TABLE + si[TSTART + seq] + p / BS]; }`;
}

/** The rows an activation has this step: `si[0]` (tokens) or `si[1]` (sampled rows). */
export function rowsExpr(a: PlanAct): string {
  return a.rows === 'tokens' ? 'si[0]' : 'si[1]';
}

/**
 * Weight decoders. Quantized bytes become floats without an int → float conversion (on Hopper an I2F issues
 * at 16 a clock per SM against 128 FMAs): a byte b in the low mantissa bits of 2^23 is the float 8388608 + b
 * exactly (`bitcast<f32>(0x4B000000 | b)`), so one subtraction gives b − 8 for a Q4_0 nibble (− 8388616) and,
 * with the word xor 0x80808080 (b + 128 per byte), the signed Q8_0 byte (− 8388736). Both subtractions are
 * exact: the same floats as `f32(q) − 8` and `f32(i8)`, so every output keeps its bits.
 */
export const WEIGHT_FNS = /* wgsl */ `
fn bf2(u : u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u)); }
fn bytes4(v : u32, mask : u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(((vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(mask)) | vec4<u32>(0x4B000000u));
}
fn i8x4(u : u32) -> vec4<f32> { return bytes4(u ^ 0x80808080u, 0xffu) - vec4<f32>(8388736.0); }
fn nib4(u : u32) -> vec4<f32> { return bytes4(u, 0xfu) - vec4<f32>(8388616.0); }`;

/** The decoders as they were, with int → float conversions (same floats; `KernelTuning.weightDecode: 'convert'`, for the device A/B). */
export const WEIGHT_FNS_CONVERT = /* wgsl */ `
fn bf2(u : u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u)); }
fn i8x4(u : u32) -> vec4<f32> {
  return vec4<f32>(vec4<i32>(bitcast<i32>(u << 24u), bitcast<i32>(u << 16u), bitcast<i32>(u << 8u), bitcast<i32>(u)) >> vec4<u32>(24u));
}
fn nib4(u : u32) -> vec4<f32> {
  let v = u & 0x0f0f0f0fu;
  return vec4<f32>(f32(v & 0xffu), f32((v >> 8u) & 0xffu), f32((v >> 16u) & 0xffu), f32(v >> 24u)) - vec4<f32>(8.0);
}`;

/** Decimal WGSL float literal that round-trips an fp32 value. */
export function f32Lit(x: number): string {
  const v = Math.fround(x);
  if (!Number.isFinite(v)) throw new RangeError(`WGSL constant ${x} is not finite`);
  const s = v.toPrecision(9);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

type Access = 'read' | 'read_write';

/** Bindings of one kernel, in binding order, each distinct buffer once. */
export class Binder {
  readonly decls: string[] = [];
  readonly buffers: GPUBuffer[] = [];
  private readonly names = new Map<GPUBuffer, { name: string; type: string; access: Access }[]>();

  private siBound = false;

  constructor(
    private readonly actBuffer: (a: PlanAct) => GPUBuffer,
    private readonly si: GPUBuffer,
    readonly layout: StepLayout,
  ) {}

  /** The step input buffer's declarations (`siDecl`), bound once. */
  step(): string {
    if (this.siBound) throw new Error('binder: si is bound already');
    this.siBound = true;
    this.buffers.push(this.si);
    return siDecl(this.buffers.length - 1, this.layout);
  }

  /** An activation's buffer (for a second, typed read-only view of it). */
  bufferOf(a: PlanAct): GPUBuffer {
    return this.actBuffer(a);
  }

  /** An activation as `array<f32>`, read-write (the one way it can be bound together with itself). */
  act(a: PlanAct): string {
    return this.bind(this.actBuffer(a), `a${a.id}`, 'f32', 'read_write');
  }

  /** Any other buffer. Binding the same buffer twice returns the first name (types and access must agree). */
  buffer(buf: GPUBuffer, name: string, type: string, access: Access): string {
    return this.bind(buf, name, type, access);
  }

  private bind(buf: GPUBuffer, name: string, type: string, access: Access): string {
    const had = this.names.get(buf) ?? [];
    const same = had.find((h) => h.type === type && h.access === access);
    if (same) return same.name;
    // A second view of one buffer is allowed only when every view only reads it.
    if (had.length && (access !== 'read' || had.some((h) => h.access !== 'read'))) throw new Error(`binder: ${name} is bound as ${had[0]!.name} already`);
    this.decls.push(`@group(0) @binding(${this.buffers.length}) var<storage, ${access}> ${name} : array<${type}>;`);
    this.buffers.push(buf);
    this.names.set(buf, [...had, { name, type, access }]);
    return name;
  }
}

/// <reference types="@webgpu/types" />
/**
 * The plan's weights on the device, uploaded once from their host storage
 * (`matrixStorage`, `vectorData`): every matrix as `[n, k]` rows (an fp32
 * LinearWeight's `[k, n]` tensor is transposed on the way), fp32 rows padded
 * to a multiple of 4 and bf16 rows to a multiple of 8 (two per u32) so the
 * kernels read whole vectors; Q8_0 / Q4_0 as the CPU holds them (quants, and
 * the fp16 block scales in a buffer of their own). A weight used by several
 * ops (a tied embedding and LM head) is uploaded once.
 */
import { WeftError } from '@weft/core';
import { q4_0Rows } from '@weft/cpu-kernels';
import type { EmbeddingWeight } from '../../embedding-weight.js';
import type { LinearWeight } from '../../linear/linear-weight.js';
import type { Parameter } from '../../parameter.js';
import type { HeadMatrices } from '../ops.js';
import { matrixStorage, vectorData } from '../weights.js';
import { BUF } from './device.js';

export type MatFormat = 'fp32' | 'bf16' | 'q8_0' | 'q4_0';

export interface GpuMatrix {
  readonly name: string;
  readonly format: MatFormat;
  readonly n: number;
  readonly k: number;
  /** Row stride in elements (k padded for fp32 / bf16; k for the block formats). */
  readonly kp: number;
  readonly data: GPUBuffer;
  /** fp16 scales, two per u32 (block formats). */
  readonly scales: GPUBuffer | null;
  /** Bytes a step reads of this weight (what the bandwidth bound counts). */
  readonly bytes: number;
}

const ceil = (x: number, m: number) => Math.ceil(x / m) * m;

export class GpuWeights {
  private readonly matrices = new Map<LinearWeight | EmbeddingWeight, GpuMatrix>();
  private readonly vectors = new Map<Parameter, GPUBuffer>();
  private readonly headMats = new Map<HeadMatrices, GPUBuffer>();
  private readonly stacks = new Map<LinearWeight, GpuMatrix>();
  private readonly owned: GPUBuffer[] = [];

  constructor(private readonly device: GPUDevice) {}

  matrix(w: LinearWeight | EmbeddingWeight): GpuMatrix {
    let m = this.matrices.get(w);
    if (!m) this.matrices.set(w, (m = this.upload(w)));
    return m;
  }

  /** MLA's per-head fp32 matrices `[heads, k, n]`, as given. */
  heads(m: HeadMatrices): GPUBuffer {
    let b = this.headMats.get(m);
    if (!b) {
      const v = m.data();
      if (v.length !== m.heads * m.k * m.n) throw new WeftError(`webgpu plan: ${m.name} has ${v.length} values, expected [${m.heads}, ${m.k}, ${m.n}]`);
      b = this.buffer(v.byteLength, m.name);
      this.device.queue.writeBuffer(b, 0, v.buffer, v.byteOffset, v.byteLength);
      this.headMats.set(m, b);
    }
    return b;
  }

  vector(p: Parameter): GPUBuffer {
    let b = this.vectors.get(p);
    if (!b) {
      const v = vectorData(p);
      b = this.buffer(v.byteLength, String(p.name));
      this.device.queue.writeBuffer(b, 0, v.buffer, v.byteOffset, v.byteLength);
      this.vectors.set(p, b);
    }
    return b;
  }

  destroy(): void {
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
    this.matrices.clear();
    this.vectors.clear();
    this.headMats.clear();
    this.stacks.clear();
  }

  private buffer(bytes: number, name: string): GPUBuffer {
    const size = Math.max(16, ceil(bytes, 4));
    const max = this.device.limits.maxStorageBufferBindingSize;
    if (size > max) throw new WeftError(`webgpu plan: weight ${name} takes ${size} bytes, more than one storage binding may hold (${max}) on this device`);
    const b = this.device.createBuffer({ size, usage: BUF.STORAGE | BUF.COPY_DST, label: name });
    this.owned.push(b);
    return b;
  }

  private write(buf: GPUBuffer, data: ArrayBufferView, at = 0): void {
    // writeBuffer wants a multiple of 4 bytes: the tail goes through a padded copy.
    const n = data.byteLength - (data.byteLength % 4);
    if (n) this.device.queue.writeBuffer(buf, at, data.buffer, data.byteOffset, n);
    if (n < data.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(new Uint8Array(data.buffer, data.byteOffset + n, data.byteLength - n));
      this.device.queue.writeBuffer(buf, at + n, tail);
    }
  }

  private upload(w: LinearWeight | EmbeddingWeight): GpuMatrix {
    const h = hostRows(w);
    const name = String(w.name);
    const data = this.buffer(h.data.byteLength, name);
    this.write(data, h.data);
    const scales = h.scales ? this.buffer(h.scales.byteLength, `${name} scales`) : null;
    if (scales) this.write(scales, h.scales!);
    return { name, format: h.format, n: h.n, k: h.k, kp: h.kp, data, scales, bytes: h.bytes };
  }

  /**
   * Same-shape, same-format weights (a MoE layer's experts) as one matrix, their rows one after another:
   * weight e's row r is row `e·n + r` (and its block scales follow the same order). Each is read from the
   * host once; nothing else is kept.
   */
  stacked(ws: readonly LinearWeight[], name: string): GpuMatrix {
    let m = this.stacks.get(ws[0]!);
    if (m) return m;
    let data: GPUBuffer | null = null;
    let scales: GPUBuffer | null = null;
    let first: HostRows | null = null;
    for (const [e, w] of ws.entries()) {
      const h = hostRows(w);
      if (!first) {
        first = h;
        data = this.buffer(h.data.byteLength * ws.length, name);
        if (h.scales) {
          // Each weight's scales must start on a 4-byte boundary (writeBuffer).
          if (h.scales.byteLength % 4) throw new WeftError(`webgpu plan: ${name}: ${h.n} rows × ${h.k / 32} fp16 scales do not fill whole words`);
          scales = this.buffer(h.scales.byteLength * ws.length, `${name} scales`);
        }
      } else if (h.format !== first.format || h.n !== first.n || h.k !== first.k) {
        throw new WeftError(`webgpu plan: ${name}: ${String(w.name)} is ${h.format} [${h.n}, ${h.k}], the first ${first.format} [${first.n}, ${first.k}]`);
      }
      this.write(data!, h.data, e * h.data.byteLength);
      if (scales) this.write(scales, h.scales!, e * h.scales!.byteLength);
    }
    m = { name, format: first!.format, n: first!.n * ws.length, k: first!.k, kp: first!.kp, data: data!, scales, bytes: first!.bytes * ws.length };
    this.stacks.set(ws[0]!, m);
    return m;
  }
}

interface HostRows {
  format: MatFormat;
  n: number;
  k: number;
  kp: number;
  data: ArrayBufferView;
  scales: ArrayBufferView | null;
  bytes: number;
}

/** A weight's rows as the kernels read them (fp32 padded to 4, bf16 to 8 columns; blocks as stored). */
function hostRows(w: LinearWeight | EmbeddingWeight): HostRows {
  const s = matrixStorage(w);
  const { n, k } = s;
  if (s.format === 'fp32') {
    const kp = ceil(k, 4);
    const src = s.data();
    let rows = src;
    if (s.transposed || kp !== k) {
      rows = new Float32Array(n * kp);
      if (s.transposed) transposeInto(src, k, n, rows, kp);
      else for (let r = 0; r < n; r++) rows.set(src.subarray(r * k, (r + 1) * k), r * kp);
    }
    return { format: 'fp32', n, k, kp, data: rows, scales: null, bytes: n * k * 4 };
  }
  if (s.format === 'bf16') {
    const kp = ceil(k, 8);
    const src = (s.packed as { data: Uint16Array }).data;
    let rows = src;
    if (kp !== k) {
      rows = new Uint16Array(n * kp);
      for (let r = 0; r < n; r++) rows.set(src.subarray(r * k, (r + 1) * k), r * kp);
    }
    return { format: 'bf16', n, k, kp, data: rows, scales: null, bytes: n * k * 2 };
  }
  // (the WGSL kernels read Q4_0 in rows: a tile16 weight, the CPU kernels' layout, is copied back)
  const p = s.packed.format === 'q4_0' ? q4_0Rows(s.packed, n, k) : (s.packed as { qs: Int8Array | Uint8Array; d: Uint16Array });
  return { format: s.format, n, k, kp: k, data: p.qs, scales: p.d, bytes: p.qs.byteLength + p.d.byteLength };
}

/** `src [rows, cols]` → `out [cols, stride ≥ rows]`, in 64 × 64 tiles (a naive column walk of a 2048 × 5632 weight is several times slower). */
function transposeInto(src: Float32Array, rows: number, cols: number, out: Float32Array, stride: number): void {
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * stride + r] = src[r * cols + c]!;
    }
  }
}

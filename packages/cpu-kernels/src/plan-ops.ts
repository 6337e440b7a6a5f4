/**
 * The ops of a host plan step (what @weft/layers' host executor runs: one call
 * per op, no tfjs): a linear in every weight format over strided activation
 * views, RMSNorm with the fused residual add, rotary, gated activations, add,
 * soft-capping, embedding rows and paged attention. `planKernels({ isa,
 * threads })` binds them to the native addon's ISA path (native/dense.c,
 * native/plan-ops.c) or, with 'portable' or no addon, to the JS path of
 * plan-ops-portable.ts / paged-attention-portable.ts (same semantics; the
 * reference the native paths are tested against).
 *
 * A `View` is columns of a row-major buffer: element (i, j) at
 * `data[offset + i·stride + j]`; the op's own arguments say how many rows and
 * columns it touches. Linear semantics per format as the gemms of kernels.ts:
 * Q8_0 / Q4_0 quantize x to Q8_0 blocks (a8), bf16 and fp32 are weight-only.
 */
import { cpuKernels, type CpuKernelsOptions, type KernelInfo } from './kernels.js';
import { loadNative, type NativeAddon } from './native.js';
import { pagedAttentionPortable } from './paged-attention-portable.js';
import type { EmbedTable, HostMatrix, PagedAttentionArgs, View } from './plan-types.js';
import { q4_0Rows } from './q4-tile.js';
import { addPortable, embedPortable, gatedActPortable, linearPortable, rmsNormPortable, rotaryPortable, softcapPortable } from './plan-ops-portable.js';

export { ATTN_SEQ_FIELDS, type EmbedTable, type HostMatrix, type PagedAttentionArgs, type View } from './plan-types.js';

export interface PlanKernels {
  info: KernelInfo;
  /** `out[m, n] ← (accumulate ? out : 0) + x[m, k] · Wᵀ (+ bias)`. */
  linear(x: View, m: number, w: HostMatrix, out: View, accumulate: boolean, bias: Float32Array | null): void;
  /**
   * RMSNorm over groups of `groupSize` columns (weight: one group long): with `residual`, first residual ← x + residual
   * (← x when residualInit), then out = norm(residual); out may alias x.
   */
  rmsNorm(x: View, out: View, residual: View | null, residualInit: boolean, rows: number, width: number, groupSize: number, weight: Float32Array, eps: number): void;
  /** In place on `heads` heads of `headSize` columns, cos/sin `[rows, rotaryDim / 2]`. */
  rotary(x: View, rows: number, heads: number, headSize: number, rotaryDim: number, neox: boolean, cos: Float32Array, sin: Float32Array): void;
  /** `out[rows, half] = act(x[:, :half]) · x[:, half:]`. */
  gatedAct(act: 'silu' | 'gelu_tanh', x: View, out: View, rows: number, half: number): void;
  add(a: View, b: View, out: View, rows: number, width: number): void;
  softcap(x: View, rows: number, width: number, cap: number): void;
  /** `out[t] = table[ids[t] − vocabStart] · scale`, zero rows for ids outside the table. */
  embed(table: EmbedTable, ids: Int32Array, vocabStart: number, scale: number, out: View): void;
  attention(a: PagedAttentionArgs): void;
}

const LINEAR_KIND = { q8_0: 0, q4_0: 1, bf16: 2 } as const;

/** The plan ops on one ISA path (`isa`, `threads` as `cpuKernels`); threads split the linears and attention. */
export function planKernels(options: CpuKernelsOptions = {}): PlanKernels {
  const { info } = cpuKernels(options); // validates isa and threads
  const { addon } = loadNative();
  if (info.isa === 'portable' || !addon) return portableKernels(info);
  return nativeKernels(addon, info.isas.indexOf(info.isa), info.threads, info);
}

function portableKernels(info: KernelInfo): PlanKernels {
  return {
    info,
    linear: linearPortable,
    rmsNorm: rmsNormPortable,
    rotary: rotaryPortable,
    gatedAct: gatedActPortable,
    add: addPortable,
    softcap: softcapPortable,
    embed: embedPortable,
    attention: pagedAttentionPortable,
  };
}

function nativeKernels(a: NativeAddon, isa: number, threads: number, info: KernelInfo): PlanKernels {
  return {
    info,
    linear(x, m, w, out, accumulate, bias) {
      const acc = accumulate ? 1 : 0;
      if (w.format === 'fp32') {
        a.linear(isa, threads, w.layout === 'kn' ? 4 : 3, m, w.k, w.n, x.data, x.offset, x.stride, w.data, null, out.data, out.offset, out.stride, acc, bias);
      } else if (w.format === 'bf16') {
        a.linear(isa, threads, 2, m, w.k, w.n, x.data, x.offset, x.stride, w.data, null, out.data, out.offset, out.stride, acc, bias);
      } else if (w.format === 'q4_0' && w.layout === 'tile16') {
        // kind 5: the tile16 kernels (builds before them: a copy in rows a call)
        const r = a.gemmQ4_0Tile16 ? w : q4_0Rows(w, w.n, w.k);
        a.linear(isa, threads, r === w ? 5 : 1, m, w.k, w.n, x.data, x.offset, x.stride, r.qs, r.d, out.data, out.offset, out.stride, acc, bias);
      } else {
        a.linear(isa, threads, LINEAR_KIND[w.format], m, w.k, w.n, x.data, x.offset, x.stride, w.qs, w.d, out.data, out.offset, out.stride, acc, bias);
      }
    },
    rmsNorm(x, out, r, init, rows, width, group, weight, eps) {
      a.rmsNorm(isa, x.data, x.offset, x.stride, out.data, out.offset, out.stride, r ? r.data : null, r ? r.offset : 0, r ? r.stride : 0, init ? 1 : 0, rows, width, group, weight, eps);
    },
    rotary(x, rows, heads, headSize, rotaryDim, neox, cos, sin) {
      a.rotary(isa, x.data, x.offset, x.stride, rows, heads, headSize, rotaryDim, neox ? 1 : 0, cos, sin);
    },
    gatedAct(act, x, out, rows, half) {
      a.gatedAct(isa, act === 'silu' ? 0 : 1, x.data, x.offset, x.stride, out.data, out.offset, out.stride, rows, half);
    },
    add(x, y, out, rows, width) {
      a.add(isa, x.data, x.offset, x.stride, y.data, y.offset, y.stride, out.data, out.offset, out.stride, rows, width);
    },
    softcap(x, rows, width, cap) {
      a.softcap(isa, x.data, x.offset, x.stride, rows, width, cap);
    },
    embed(table, ids, vocabStart, scale, out) {
      const fmt = table.format === 'bf16' ? 1 : table.layout === 'kn' ? 2 : 0;
      a.embed(isa, table.data, fmt, table.n, table.k, ids, vocabStart, scale, out.data, out.offset, out.stride);
    },
    attention(p) {
      const dims = Int32Array.of(p.rows, p.numHeads, p.numKvHeads, p.headDim, p.vHeadDim, p.blockSize, p.slidingWindow, p.numBlocks);
      a.attention(
        isa, threads, p.q.data, p.q.offset, p.q.stride, p.k.data, p.k.offset, p.k.stride, p.v?.data ?? null, p.v?.offset ?? 0, p.v?.stride ?? 0,
        p.out.data, p.out.offset, p.out.stride, p.kCache, p.vCache, p.seqs, p.tables, dims, p.scale, p.softCap,
      );
    },
  };
}

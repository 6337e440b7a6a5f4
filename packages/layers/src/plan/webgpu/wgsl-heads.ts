/**
 * WGSL for MLA's per-head ops (plan/ops.ts): `copyHeads` (strided column
 * copies, `xStride` 0 repeating one head) and `headMatmul` (the absorbed
 * kv_b_proj halves: per head, `x[t, h·xStride + i] · W[h, i, j]`, fp32
 * matrices `[heads, k, n]` uploaded once). copyHeads: one thread per output element.
 */
import type { ActView, CopyHeadsOp, HeadMatmulOp } from '../ops.js';
import { rowsExpr, type Binder } from './wgsl-common.js';

const MAIN = '@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32)';

/** One thread per (row, head h, column j < width); returns early past the step's rows. */
function perHead(x: ActView, heads: number, width: number): string {
  return `let idx = (wid.y * 65535u + wid.x) * 256u + lid;
  let row = idx / ${heads * width}u;
  if (row >= ${rowsExpr(x.act)}) { return; }
  let h = (idx % ${heads * width}u) / ${width}u;
  let j = idx % ${width}u;`;
}

export function copyHeadsWgsl(b: Binder, op: CopyHeadsOp): string {
  const X = b.act(op.x.act);
  const O = b.act(op.out.act);
  const si = b.step();
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  ${perHead(op.x, op.heads, op.width)}
  ${O}[row * ${op.out.act.width}u + ${op.out.col}u + h * ${op.outStride}u + j] = ${X}[row * ${op.x.act.width}u + ${op.x.col}u + h * ${op.xStride}u + j];
}`;
}

/** Columns, K slices and rows one headMatmul workgroup takes (256 threads: a column × a K slice each). */
const HM = { cols: 32, slices: 8, rows: 8 };

/**
 * `headMatmul`: a workgroup owns one head's 32 columns × 8 rows; its 256 threads are 32 columns × 8 slices of
 * k, each loads its W[h, i, column] once for the 8 rows (x reads are the same address across a column group:
 * one broadcast), and the 8 slices' sums meet in workgroup memory. Grid: heads × ⌈n / 32⌉ by ⌈rows / 8⌉.
 */
export function headMatmulWgsl(b: Binder, op: HeadMatmulOp, w: GPUBuffer): string {
  const X = b.act(op.x.act);
  const O = b.act(op.out.act);
  const Wt = b.buffer(w, 'hw', 'f32', 'read');
  const si = b.step();
  const { heads, k, n } = op.weight;
  const { cols, slices, rows } = HM;
  const per = Math.ceil(k / slices);
  const rs = Array.from({ length: rows }, (_, r) => r);
  return `${b.decls.join('\n')}
${si}
var<workgroup> red : array<f32, ${slices * rows * cols}>;
${MAIN} {
  let T = ${rowsExpr(op.x.act)};
  let h = wid.x / ${Math.ceil(n / cols)}u;
  let j = (wid.x % ${Math.ceil(n / cols)}u) * ${cols}u + lid % ${cols}u;
  let g = lid / ${cols}u;
  let r0 = wid.y * ${rows}u;
  // Rows past the step read its last row (their sums are never stored).
  ${rs.map((r) => `let xo${r} = min(r0 + ${r}u, T - 1u) * ${op.x.act.width}u + ${op.x.col}u + h * ${op.xStride}u;`).join('\n  ')}
  ${rs.map((r) => `var acc${r} = 0.0;`).join(' ')}
  if (j < ${n}u) {
    let i1 = min(${k}u, (g + 1u) * ${per}u);
    for (var i = g * ${per}u; i < i1; i++) {
      let wv = ${Wt}[h * ${k * n}u + i * ${n}u + j];
      ${rs.map((r) => `acc${r} += ${X}[xo${r} + i] * wv;`).join(' ')}
    }
  }
  ${rs.map((r) => `red[(g * ${rows}u + ${r}u) * ${cols}u + lid % ${cols}u] = acc${r};`).join('\n  ')}
  workgroupBarrier();
  let r = lid / ${cols}u;
  let c = lid % ${cols}u;
  let jj = (wid.x % ${Math.ceil(n / cols)}u) * ${cols}u + c;
  if (r0 + r < T && jj < ${n}u) {
    var sum = 0.0;
    for (var q = 0u; q < ${slices}u; q++) { sum += red[(q * ${rows}u + r) * ${cols}u + c]; }
    ${O}[(r0 + r) * ${op.out.act.width}u + ${op.out.col}u + h * ${op.outStride}u + jj] = sum;
  }
}`;
}

/** headMatmul's grid at T rows: heads × ⌈n / 32⌉ workgroups by ⌈T / 8⌉. */
export function headMatmulWorkgroups(op: HeadMatmulOp, T: number): [number, number] | null {
  return T > 0 ? [op.weight.heads * Math.ceil(op.weight.n / HM.cols), Math.ceil(T / HM.rows)] : null;
}

/**
 * WGSL for MLA's per-head ops (plan/ops.ts): `copyHeads` (strided column
 * copies, `xStride` 0 repeating one head) and `headMatmul` (the absorbed
 * kv_b_proj halves: per head, `x[t, h·xStride + i] · W[h, i, j]`, fp32
 * matrices `[heads, k, n]` uploaded once). One thread per output element.
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

export function headMatmulWgsl(b: Binder, op: HeadMatmulOp, w: GPUBuffer): string {
  const X = b.act(op.x.act);
  const O = b.act(op.out.act);
  const Wt = b.buffer(w, 'hw', 'f32', 'read');
  const si = b.step();
  const { heads, k, n } = op.weight;
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  ${perHead(op.x, heads, n)}
  let xb = row * ${op.x.act.width}u + ${op.x.col}u + h * ${op.xStride}u;
  let wb = h * ${k * n}u + j;
  var acc = 0.0;
  for (var i = 0u; i < ${k}u; i++) { acc += ${X}[xb + i] * ${Wt}[wb + i * ${n}u]; }
  ${O}[row * ${op.out.act.width}u + ${op.out.col}u + h * ${op.outStride}u + j] = acc;
}`;
}

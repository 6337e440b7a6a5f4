/**
 * WGSL for MLA's per-head ops (plan/ops.ts): `copyHeads` (strided column
 * copies, `xStride` 0 repeating one head) and `headMatmul` (the absorbed
 * kv_b_proj halves: per head, `x[t, h·xStride + i] · W[h, i, j]`, fp32
 * matrices `[heads, k, n]` uploaded once). One thread per output element.
 */
import type { CopyHeadsOp, HeadMatmulOp } from '../ops.js';
import { rowsExpr, type Binder } from './wgsl-common.js';

const MAIN = '@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32)';

export function copyHeadsWgsl(b: Binder, op: CopyHeadsOp): string {
  const X = b.act(op.x.act);
  const O = b.act(op.out.act);
  const si = b.step();
  const per = op.heads * op.width;
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  let idx = (wid.y * 65535u + wid.x) * 256u + lid;
  let row = idx / ${per}u;
  if (row >= ${rowsExpr(op.x.act)}) { return; }
  let h = (idx % ${per}u) / ${op.width}u;
  let j = idx % ${op.width}u;
  ${O}[row * ${op.out.act.width}u + ${op.out.col}u + h * ${op.outStride}u + j] = ${X}[row * ${op.x.act.width}u + ${op.x.col}u + h * ${op.xStride}u + j];
}`;
}

export function headMatmulWgsl(b: Binder, op: HeadMatmulOp, w: GPUBuffer): string {
  const X = b.act(op.x.act);
  const O = b.act(op.out.act);
  const Wt = b.buffer(w, 'hw', 'f32', 'read');
  const si = b.step();
  const { heads, k, n } = op.weight;
  const per = heads * n;
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  let idx = (wid.y * 65535u + wid.x) * 256u + lid;
  let row = idx / ${per}u;
  if (row >= ${rowsExpr(op.x.act)}) { return; }
  let h = (idx % ${per}u) / ${n}u;
  let j = idx % ${n}u;
  let xb = row * ${op.x.act.width}u + ${op.x.col}u + h * ${op.xStride}u;
  let wb = h * ${k * n}u + j;
  var acc = 0.0;
  for (var i = 0u; i < ${k}u; i++) { acc += ${X}[xb + i] * ${Wt}[wb + i * ${n}u]; }
  ${O}[row * ${op.out.act.width}u + ${op.out.col}u + h * ${op.outStride}u + j] = acc;
}`;
}

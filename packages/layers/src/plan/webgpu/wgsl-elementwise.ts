/**
 * WGSL for the plan's small ops: embed (any weight format, vocab-parallel
 * zero rows), RMSNorm (groups, fused residual add, weight offset), rotary
 * (neox / gpt-j, partial, cos|sin rows of the step), the gated activation,
 * add, soft-cap, the sampled-row gather and greedy argmax. All fp32.
 */
import type { ActView, AddOp, EmbedOp, GatedActOp, GatherSampledOp, RmsNormOp, RotaryOp, SoftcapOp } from '../ops.js';
import type { GpuMatrix } from './gpu-weights.js';
import { ACT_FNS } from './wgsl-matmul.js';
import { f32Lit, rowsExpr, WEIGHT_FNS, type Binder } from './wgsl-common.js';

const IDX = 'let idx = (wid.y * 65535u + wid.x) * 256u + lid;';
const MAIN = '@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32)';

/** out[t] = table[id − vocabStart] · scale, zero rows for ids outside the shard. One workgroup per row. */
export function embedWgsl(b: Binder, op: EmbedOp, w: GpuMatrix): string {
  const O = b.act(op.out);
  const wType = w.format === 'fp32' ? 'f32' : 'u32';
  const E = b.buffer(w.data, 'E', wType, 'read');
  const S = w.scales ? b.buffer(w.scales, 'esc', 'u32', 'read') : null;
  const si = b.step();
  const K = w.k;
  const body = {
    fp32: `return ${E}[r * ${w.kp}u + c];`,
    bf16: `let u = ${E}[(r * ${w.kp}u + c) / 2u]; return bitcast<f32>(select(u << 16u, u & 0xffff0000u, (c & 1u) == 1u));`,
    q8_0: `return i8x4(${E}[(r * ${K}u + c) / 4u])[c % 4u] * scale(r * ${K / 32}u + c / 32u);`,
    q4_0: `let blk = r * ${K / 32}u + c / 32u; return nib4(${E}[blk * 4u + (c % 16u) / 4u] >> select(0u, 4u, c % 32u >= 16u))[c % 4u] * scale(blk);`,
  }[w.format];
  return `${w.format === 'q8_0' || w.format === 'q4_0' ? WEIGHT_FNS : ''}
${b.decls.join('\n')}
${si}
${S ? `fn scale(i : u32) -> f32 { return unpack2x16float(${S}[i >> 1u])[i & 1u]; }` : ''}
fn ev(r : u32, c : u32) -> f32 { ${body} }
${MAIN} {
  let row = wid.x;
  if (row >= si[0]) { return; }
  let id = i32(si[TOK + row]);
  let inside = id >= ${op.vocabStart} && id < ${op.vocabEnd};
  let r = u32(id - ${op.vocabStart});
  for (var c = lid; c < ${K}u; c += 256u) {
    var v = 0.0;
    if (inside) { v = ev(r, c) * ${f32Lit(op.scale)}; }
    ${O}[row * ${op.out.width}u + c] = v;
  }
}`;
}

/** RMSNorm over groups (workgroup per (group, row)), with the fused residual add; `gatherInto`: of the sampled rows only. */
export function rmsNormWgsl(b: Binder, op: RmsNormOp, weight: GPUBuffer, gatherInto: ActView | null = null): string {
  const G = op.groupSize;
  const WG = G >= 256 ? 256 : 64;
  const X = b.act(op.x.act);
  const R = op.residual ? b.act(op.residual.act) : null;
  const out = gatherInto ?? op.out;
  const O = b.act(out.act);
  const Wt = b.buffer(weight, 'nw', 'f32', 'read');
  const si = b.step();
  // Gathered: output row `row` is the norm of the step's sampled row si[SAMPLE + row] (the LM head's input).
  const src = gatherInto ? 'si[SAMPLE + row]' : 'row';
  const xi = `${src} * ${op.x.act.width}u + ${op.x.col}u + g * ${G}u + i`;
  const ri = op.residual ? `${src} * ${op.residual.act.width}u + ${op.residual.col}u + g * ${G}u + i` : '';
  const oi = `row * ${out.act.width}u + ${out.col}u + g * ${G}u + i`;
  const first = R ? (op.residualInit ? `${X}[${xi}]` : `${X}[${xi}] + ${R}[${ri}]`) : `${X}[${xi}]`;
  const off = op.weightOffset === 0 ? '' : ` + ${f32Lit(op.weightOffset)}`;
  const reduce: string[] = [];
  for (let s = WG / 2; s >= 1; s /= 2) reduce.push(`if (lid < ${s}u) { red[lid] += red[lid + ${s}u]; }`, 'workgroupBarrier();');
  return `${b.decls.join('\n')}
${si}
var<workgroup> red : array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let g = wid.x;
  let row = wid.y;
  if (row >= ${gatherInto ? 'si[1]' : rowsExpr(op.x.act)}) { return; }
  var ss = 0.0;
  for (var i = lid; i < ${G}u; i += ${WG}u) {
    let v = ${first};
    ${R ? `${R}[${ri}] = v;` : ''}
    ss += v * v;
  }
  red[lid] = ss;
  workgroupBarrier();
  ${reduce.join('\n  ')}
  let inv = inverseSqrt(red[0] / ${f32Lit(G)} + ${f32Lit(op.eps)});
  for (var i = lid; i < ${G}u; i += ${WG}u) {
    let v = ${R ? `${R}[${ri}]` : `${X}[${xi}]`};
    ${O}[${oi}] = (${Wt}[i]${off}) * (v * inv);
  }
}`;
}

/** Rotary in place on `heads` heads; `cs` holds the step's rows `[cos (rotaryDim/2) | sin (rotaryDim/2)]`. One thread per pair. */
export function rotaryWgsl(b: Binder, op: RotaryOp, cs: GPUBuffer): string {
  const { headSize: HS, rotaryDim: RD, isNeoxStyle } = op.rope;
  const half = RD / 2;
  const X = b.act(op.x.act);
  const C = b.buffer(cs, 'cs', 'f32', 'read');
  const si = b.step();
  const [i1, i2] = isNeoxStyle ? ['i', `i + ${half}u`] : ['2u * i', '2u * i + 1u'];
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  ${IDX}
  let row = idx / ${op.heads * half}u;
  if (row >= si[0]) { return; }
  let h = (idx / ${half}u) % ${op.heads}u;
  let i = idx % ${half}u;
  let base = row * ${op.x.act.width}u + ${op.x.col}u + h * ${HS}u;
  let c = ${C}[row * ${RD}u + i];
  let s = ${C}[row * ${RD}u + ${half}u + i];
  let a = ${X}[base + ${i1}];
  let z = ${X}[base + ${i2}];
  ${X}[base + ${i1}] = a * c - z * s;
  ${X}[base + ${i2}] = z * c + a * s;
}`;
}

export function gatedActWgsl(b: Binder, op: GatedActOp): string {
  const I = op.x.width / 2;
  const X = b.act(op.x.act);
  const O = b.act(op.out.act);
  const si = b.step();
  return `${ACT_FNS}
${b.decls.join('\n')}
${si}
${MAIN} {
  ${IDX}
  let row = idx / ${I}u;
  if (row >= ${rowsExpr(op.x.act)}) { return; }
  let j = idx % ${I}u;
  let xb = row * ${op.x.act.width}u + ${op.x.col}u + j;
  ${O}[row * ${op.out.act.width}u + ${op.out.col}u + j] = ${op.act}(${X}[xb]) * ${X}[xb + ${I}u];
}`;
}

export function addWgsl(b: Binder, op: AddOp): string {
  const A = b.act(op.a.act);
  const B = b.act(op.b.act);
  const O = b.act(op.out.act);
  const si = b.step();
  const W = op.out.width;
  const at = (v: { act: { width: number }; col: number }) => `row * ${v.act.width}u + ${v.col}u + j`;
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  ${IDX}
  let row = idx / ${W}u;
  if (row >= ${rowsExpr(op.out.act)}) { return; }
  let j = idx % ${W}u;
  ${O}[${at(op.out)}] = ${A}[${at(op.a)}] + ${B}[${at(op.b)}];
}`;
}

export function softcapWgsl(b: Binder, op: SoftcapOp): string {
  const X = b.act(op.x.act);
  const si = b.step();
  const W = op.x.width;
  const cap = f32Lit(op.cap);
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  ${IDX}
  let row = idx / ${W}u;
  if (row >= ${rowsExpr(op.x.act)}) { return; }
  let i = row * ${op.x.act.width}u + ${op.x.col}u + idx % ${W}u;
  ${X}[i] = ${cap} * tanh(clamp(${X}[i] / ${cap}, -15.0, 15.0));
}`;
}

/** out[s] = x[sampledRow[s]]. */
export function gatherSampledWgsl(b: Binder, op: GatherSampledOp): string {
  const X = b.act(op.x.act);
  const O = b.act(op.out.act);
  const si = b.step();
  const W = op.x.width;
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  ${IDX}
  let s = idx / ${W}u;
  if (s >= si[1]) { return; }
  let j = idx % ${W}u;
  ${O}[s * ${op.out.act.width}u + ${op.out.col}u + j] = ${X}[si[SAMPLE + s] * ${op.x.act.width}u + ${op.x.col}u + j];
}`;
}

/** Greedy sampling: the first index of the largest of each sampled row's first `vocab` logits. */
export function argmaxWgsl(b: Binder, logits: { id: number; width: number; name: string; rows: 'tokens' | 'sampled' }, vocab: number, ids: GPUBuffer): string {
  const L = b.act(logits);
  const T = b.buffer(ids, 'ids', 'u32', 'read_write');
  const si = b.step();
  return `${b.decls.join('\n')}
${si}
var<workgroup> bv : array<f32, 256>;
var<workgroup> bi : array<u32, 256>;
${MAIN} {
  let s = wid.x;
  if (s >= si[1]) { return; }
  var best = -3.4e38;
  var arg = 0xffffffffu;
  for (var i = lid; i < ${vocab}u; i += 256u) {
    let x = ${L}[s * ${logits.width}u + i];
    if (x > best) { best = x; arg = i; }
  }
  bv[lid] = best;
  bi[lid] = arg;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid < st) {
      let ov = bv[lid + st];
      let oi = bi[lid + st];
      if (ov > bv[lid] || (ov == bv[lid] && oi < bi[lid])) { bv[lid] = ov; bi[lid] = oi; }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { ${T}[s] = bi[0]; }
}`;
}


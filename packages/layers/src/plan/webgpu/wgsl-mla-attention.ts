/**
 * Prefill attention over MLA's latent cache (V = K's prefix, head dims like 576 / 512 that leave the flash
 * kernel's query tile no room in workgroup memory): a workgroup owns 32 query vectors — `BR` rows × `GH` query
 * heads of one KV head — whose queries live in registers (8 threads a query vector, each holding an eighth of
 * its dims), and walks their sequence's keys in tiles of 8 staged once in workgroup memory for all of them.
 * Per tile each thread takes its dims' part of the 8 scores, the parts meet in workgroup memory, and every
 * thread of a query vector runs the online softmax (running max, rescaled sum) and adds `p · V` for its eighth
 * of the value dims straight from the staged keys. No score matrix; rows of different sequences (a mixed step)
 * one sequence at a time; causal, sliding window and soft cap as `attentionWgsl`.
 */
import type { AttentionOp } from '../ops.js';
import type { CacheBuffers } from './wgsl-attention.js';
import { f32Lit, type Binder } from './wgsl-common.js';

/** Query vectors per workgroup, threads per query vector, keys per tile. */
const QV = 32;
const TPQ = 8;
const BC = 8;

export interface MlaAttentionConfig {
  /** Query heads (of one KV head) per workgroup. */
  GH: number;
  /** Rows per workgroup. */
  BR: number;
}

function mlaBytes(op: AttentionOp): number {
  return 16 * BC * (op.headDim / 4) + 4 * QV * TPQ * BC;
}

/** The kernel's shape for `op`, or null where it does not apply (V of its own, dims not multiples of 32, too little workgroup memory). */
export function mlaAttentionConfig(op: AttentionOp, sharedBytes: number): MlaAttentionConfig | null {
  if (op.v || op.headDim % (4 * TPQ) || op.vHeadDim % (4 * TPQ) || op.vHeadDim > op.headDim || mlaBytes(op) > sharedBytes) return null;
  const G = op.numHeads / op.numKvHeads;
  let GH = 1;
  for (let g = 1; g <= Math.min(G, QV); g++) if (G % g === 0) GH = g;
  return { GH, BR: Math.floor(QV / GH) };
}

/** Workgroups: (KV head × head chunk, row blocks). */
export function mlaAttentionWorkgroups(op: AttentionOp, c: MlaAttentionConfig, T: number): [number, number] {
  return [op.numKvHeads * (op.numHeads / op.numKvHeads / c.GH), Math.ceil(T / c.BR)];
}

export function mlaAttentionWgsl(b: Binder, op: AttentionOp, cache: CacheBuffers, c: MlaAttentionConfig): string {
  const { numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv } = op;
  const G = H / Hk;
  const { GH, BR } = c;
  const D4 = D / 4;
  const NQ = D4 / TPQ;
  const NO = Dv / 4 / TPQ;
  const qs = Array.from({ length: NQ }, (_, u) => u);
  const os = Array.from({ length: NO }, (_, u) => u);
  const Q = b.act(op.q.act);
  const O = b.act(op.out.act);
  const KC = b.buffer(cache.k, 'kc4', 'vec4<f32>', 'read');
  const si = b.step();
  const cap = op.logitsSoftCap;
  const capped = (x: string) => (cap === null ? x : `${f32Lit(cap)} * tanh(clamp(${x} / ${f32Lit(cap)}, -15.0, 15.0))`);
  const W = op.slidingWindow;
  const loOf = (p: string) => (W === null ? '0u' : `select(0u, ${p} + 1u - ${W}u, ${p} + 1u > ${W}u)`);
  const qw = op.q.act.width;
  return `${b.decls.join('\n')}
${si}
var<workgroup> Ks : array<vec4<f32>, ${BC * D4}>;
var<workgroup> Ps : array<f32, ${QV * TPQ * BC}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let T = si[0];
  let hk = wid.x / ${G / GH}u;
  let h0 = hk * ${G}u + (wid.x % ${G / GH}u) * ${GH}u;
  let r0 = wid.y * ${BR}u;
  if (r0 >= T) { return; }
  let r1 = min(r0 + ${BR}u, T);
  let qv = lid / ${TPQ}u;
  let sub = lid % ${TPQ}u;
  let row = r0 + qv / ${GH}u;
  let live = qv < ${BR * GH}u && row < r1;
  // This thread's dims of its query vector: vec4 indices sub + ${TPQ}·u.
  let qb = min(row, T - 1u) * ${qw}u + ${op.q.col}u + (h0 + qv % ${GH}u) * ${D}u;
  ${qs.map((u) => `var q${u} = vec4<f32>(0.0);`).join(' ')}
  if (live) {
    ${qs.map((u) => `{ let at = qb + 4u * (sub + ${u * TPQ}u); q${u} = vec4<f32>(${Q}[at], ${Q}[at + 1u], ${Q}[at + 2u], ${Q}[at + 3u]); }`).join('\n    ')}
  }
  var p = 0u;
  if (live) { p = si[POS + row]; }
  let lo = ${loOf('p')};
  var rs = r0;
  loop {
    if (rs >= r1) { break; }
    let seq = si[ROWSEQ + rs];
    var re = rs + 1u;
    loop {
      if (re >= r1 || si[ROWSEQ + re] != seq) { break; }
      re++;
    }
    let mine = live && row >= rs && row < re;
    let pFirst = si[POS + rs];
    let klo = ${loOf('pFirst')};
    let khi = si[POS + re - 1u];
    var m = -1e30;
    var l = 0.0;
    ${os.map((u) => `var o${u} = vec4<f32>(0.0);`).join(' ')}
    for (var t0 = klo; t0 <= khi; t0 += ${BC}u) {
      let tile = min(${BC}u, khi + 1u - t0);
      workgroupBarrier();
      for (var i = lid; i < ${BC * D4}u; i += 256u) {
        let kt = i / ${D4}u;
        var v = vec4<f32>(0.0);
        if (kt < tile) {
          let j = t0 + kt;
          v = ${KC}[((blockOf(seq, j) * ${Hk}u + hk) * BS + j % BS) * ${D4}u + i % ${D4}u];
        }
        Ks[i] = v;
      }
      workgroupBarrier();
      for (var cc = 0u; cc < ${BC}u; cc++) {
        let kb = cc * ${D4}u + sub;
        Ps[(qv * ${BC}u + cc) * ${TPQ}u + sub] = ${qs.map((u) => `dot(q${u}, Ks[kb + ${u * TPQ}u])`).join(' + ')};
      }
      workgroupBarrier();
      if (mine) {
        var s : array<f32, ${BC}>;
        var mt = m;
        for (var cc = 0u; cc < ${BC}u; cc++) {
          let j = t0 + cc;
          var v = -1e30;
          if (cc < tile && j >= lo && j <= p) {
            let pb = (qv * ${BC}u + cc) * ${TPQ}u;
            let d = ${Array.from({ length: TPQ }, (_, x) => `Ps[pb + ${x}u]`).join(' + ')};
            v = ${capped(`d * ${f32Lit(op.scale)}`)};
          }
          s[cc] = v;
          mt = max(mt, v);
        }
        let alpha = exp(m - mt);
        l *= alpha;
        ${os.map((u) => `o${u} *= alpha;`).join(' ')}
        for (var cc = 0u; cc < ${BC}u; cc++) {
          if (s[cc] > -1e29) {
            let pj = exp(s[cc] - mt);
            l += pj;
            let kb = cc * ${D4}u + sub;
            ${os.map((u) => `o${u} += pj * Ks[kb + ${u * TPQ}u];`).join(' ')}
          }
        }
        m = mt;
      }
    }
    if (mine) {
      let ob = row * ${op.out.act.width}u + ${op.out.col}u + (h0 + qv % ${GH}u) * ${Dv}u;
      ${os.map((u) => `{ let v = o${u} / l; let at = ob + 4u * (sub + ${u * TPQ}u); ${[0, 1, 2, 3].map((x) => `${O}[at + ${x}u] = v[${x}];`).join(' ')} }`).join('\n      ')}
    }
    rs = re;
  }
}`;
}

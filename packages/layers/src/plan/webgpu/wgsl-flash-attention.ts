/**
 * Prefill attention without a score matrix in memory (flash-style): a
 * workgroup owns `QV` query vectors — `BR` consecutive rows of the step × `GH`
 * query heads of one KV head — and walks their sequence's keys in tiles of
 * `BC`, each K (and V) tile staged in workgroup memory once for all of them.
 * Per tile a thread scores `BC / TPQ` keys of its query vector into a small
 * score tile, then (online softmax: running max, rescaled sum and output)
 * adds `p · V` for its `Dv / TPQ` value dims. Three barriers per tile, no
 * per-tile reduction trees. Rows of a workgroup that belong to different
 * sequences (a mixed step) are handled one sequence at a time.
 * Masks as `attentionWgsl`: causal, sliding window, soft cap; V from its own
 * cache or K's prefix. Needs head dims that are multiples of 4 (vec4 tiles).
 */
import type { AttentionOp } from '../ops.js';
import type { CacheBuffers } from './wgsl-attention.js';
import { f32Lit, type Binder } from './wgsl-common.js';

export interface FlashConfig {
  /** Query vectors per workgroup. */
  QV: number;
  /** Keys per tile. */
  BC: number;
  /** Query heads (of one KV head) per workgroup. */
  GH: number;
  /** Rows per workgroup. */
  BR: number;
}

function flashBytes(op: AttentionOp, QV: number, BC: number): number {
  const D4 = op.headDim / 4;
  const Dv4 = op.vHeadDim / 4;
  return 16 * (QV * D4 + BC * (D4 + 1) + (op.v ? BC * Dv4 : 0)) + 4 * QV * (BC + 1);
}

/** The flash configuration for `op` within `sharedBytes` of workgroup memory, or null (the staged kernel runs). */
export function flashConfig(op: AttentionOp, sharedBytes: number, first?: { QV: number; BC: number }): FlashConfig | null {
  if (op.headDim % 4 || op.vHeadDim % 4) return null;
  const G = op.numHeads / op.numKvHeads;
  for (const [QV, BC] of [
    ...(first ? [[first.QV, first.BC] as const] : []),
    // 32 × 16 first: on the H200 (TinyLlama heads, 512 rows) 267 µs a layer against 329 for 32 × 32, 340 for 64 × 32.
    [32, 16],
    [32, 32],
    [16, 16],
    [8, 16],
  ] as const) {
    if (256 % QV || QV > 256) continue;
    if (flashBytes(op, QV, BC) > sharedBytes) continue;
    let GH = 1;
    for (let g = 1; g <= Math.min(G, QV); g++) if (G % g === 0) GH = g;
    return { QV, BC, GH, BR: Math.floor(QV / GH) };
  }
  return null;
}

/** Workgroups: (KV head × head chunk, row blocks). */
export function flashWorkgroups(op: AttentionOp, c: FlashConfig, T: number): [number, number] {
  return [op.numKvHeads * (op.numHeads / op.numKvHeads / c.GH), Math.ceil(T / c.BR)];
}

export function flashAttentionWgsl(b: Binder, op: AttentionOp, cache: CacheBuffers, c: FlashConfig): string {
  const { numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv } = op;
  const G = H / Hk;
  const { QV, BC, GH, BR } = c;
  const TPQ = 256 / QV;
  const D4 = D / 4;
  const Dv4 = Dv / 4;
  const DPT = Math.ceil(Dv4 / TPQ);
  const us = Array.from({ length: DPT }, (_, u) => u);
  const Q = b.act(op.q.act);
  const O = b.act(op.out.act);
  const KC = b.buffer(cache.k, 'kc4', 'vec4<f32>', 'read');
  const VC = op.v ? b.buffer(cache.v!, 'vc4', 'vec4<f32>', 'read') : '';
  const si = b.step();
  const cap = op.logitsSoftCap;
  const capped = (x: string) => (cap === null ? x : `${f32Lit(cap)} * tanh(clamp(${x} / ${f32Lit(cap)}, -15.0, 15.0))`);
  const W = op.slidingWindow;
  const loOf = (p: string) => (W === null ? '0u' : `select(0u, ${p} + 1u - ${W}u, ${p} + 1u > ${W}u)`);
  const vAt = (kt: string, dv: string) => (op.v ? `Vs[${kt} * ${Dv4}u + ${dv}]` : `Ks[${kt} * ${D4 + 1}u + ${dv}]`);
  const qw = op.q.act.width;
  return `${b.decls.join('\n')}
${si}
var<workgroup> Qs : array<vec4<f32>, ${QV * D4}>;
var<workgroup> Ks : array<vec4<f32>, ${BC * (D4 + 1)}>;
${op.v ? `var<workgroup> Vs : array<vec4<f32>, ${BC * Dv4}>;` : ''}
var<workgroup> Ss : array<f32, ${QV * (BC + 1)}>;
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
  for (var i = lid; i < ${QV * D4}u; i += 256u) {
    let qq = i / ${D4}u;
    let e = i % ${D4}u;
    let r = r0 + qq / ${GH}u;
    var v = vec4<f32>(0.0);
    if (qq < ${BR * GH}u && r < r1) {
      let at = r * ${qw}u + ${op.q.col}u + (h0 + qq % ${GH}u) * ${D}u + 4u * e;
      v = vec4<f32>(${Q}[at], ${Q}[at + 1u], ${Q}[at + 2u], ${Q}[at + 3u]);
    }
    Qs[i] = v;
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
    ${us.map((u) => `var o${u} = vec4<f32>(0.0);`).join(' ')}
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
        Ks[kt * ${D4 + 1}u + i % ${D4}u] = v;
      }
      ${
        op.v
          ? `for (var i = lid; i < ${BC * Dv4}u; i += 256u) {
        let kt = i / ${Dv4}u;
        var v = vec4<f32>(0.0);
        if (kt < tile) {
          let j = t0 + kt;
          v = ${VC}[((blockOf(seq, j) * ${Hk}u + hk) * BS + j % BS) * ${Dv4}u + i % ${Dv4}u];
        }
        Vs[i] = v;
      }`
          : ''
      }
      workgroupBarrier();
      if (mine) {
        for (var cc = sub; cc < ${BC}u; cc += ${TPQ}u) {
          let j = t0 + cc;
          var s = -1e30;
          if (cc < tile && j >= lo && j <= p) {
            var d = 0.0;
            for (var e = 0u; e < ${D4}u; e++) { d += dot(Qs[qv * ${D4}u + e], Ks[cc * ${D4 + 1}u + e]); }
            s = ${capped(`d * ${f32Lit(op.scale)}`)};
          }
          Ss[qv * ${BC + 1}u + cc] = s;
        }
      }
      workgroupBarrier();
      if (mine) {
        var mt = m;
        for (var cc = 0u; cc < tile; cc++) { mt = max(mt, Ss[qv * ${BC + 1}u + cc]); }
        let alpha = exp(m - mt);
        l *= alpha;
        ${us.map((u) => `o${u} *= alpha;`).join(' ')}
        for (var cc = 0u; cc < tile; cc++) {
          let s = Ss[qv * ${BC + 1}u + cc];
          if (s > -1e29) {
            let pj = exp(s - mt);
            l += pj;
            ${us.map((u) => `{ let dv = sub + ${u * TPQ}u; if (dv < ${Dv4}u) { o${u} += pj * ${vAt('cc', 'dv')}; } }`).join('\n            ')}
          }
        }
        m = mt;
      }
    }
    if (mine) {
      let ob = row * ${op.out.act.width}u + ${op.out.col}u + (h0 + qv % ${GH}u) * ${Dv}u;
      ${us
        .map(
          (u) => `{ let dv = sub + ${u * TPQ}u; if (dv < ${Dv4}u) { let v = o${u} / l; ${[0, 1, 2, 3].map((x) => `${O}[ob + 4u * dv + ${x}u] = v[${x}];`).join(' ')} } }`,
        )
        .join('\n      ')}
    }
    rs = re;
  }
}`;
}

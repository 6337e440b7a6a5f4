/**
 * WGSL for the attention op over the paged caches (`AttentionOp`): K
 * `[block, Hk, blockSize, D]`, V `[block, Hk, blockSize, Dv]` (none with
 * `valueIsKeyPrefix`: V is K's first Dv columns).
 * - `kvWriteWgsl`: the step's new k (and v) rows into their slots.
 * - `attentionWgsl`: every query row of the step (decode, prefill, chunked,
 *   mixed) against its sequence's cached positions `max(0, p − W + 1) ..= p`.
 *   One workgroup per (row, group of GW query heads of one KV head): with
 *   GW > 1 (prefill) each tile of keys and values is staged in workgroup
 *   memory once for the whole group; GW = 1 (decode) reads them directly with
 *   more workgroups busy. A tile of 256 / GW keys is scored one key per
 *   thread, an online softmax runs per head, and P·V splits the tile's keys
 *   over groups of threads that each own up to min(Dv, 256 / GW) dims.
 */
import type { RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import type { AttentionOp } from '../ops.js';
import { f32Lit, type Binder } from './wgsl-common.js';

export interface CacheBuffers {
  k: GPUBuffer;
  v: GPUBuffer | null;
}

/** The entry point of a kernel with one thread per (row, e < per): `row`, `e` (a var), `p` (its position). */
function perRowMain(per: number): string {
  return `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let idx = (wid.y * 65535u + wid.x) * 256u + lid;
  let row = idx / ${per}u;
  if (row >= si[0]) { return; }
  var e = idx % ${per}u;
  let p = si[POS + row];`;
}

/** K (and V) rows of the step into the cache. One thread per element. */
export function kvWriteWgsl(b: Binder, op: AttentionOp, cache: CacheBuffers): string {
  const { numKvHeads: Hk, headDim: D, vHeadDim: Dv } = op;
  const K = b.act(op.k.act);
  const V = op.v ? b.act(op.v.act) : null;
  const KC = b.buffer(cache.k, 'kc', 'f32', 'read_write');
  const VC = op.v ? b.buffer(cache.v!, 'vc', 'f32', 'read_write') : null;
  const si = b.step();
  const per = Hk * (D + (op.v ? Dv : 0));
  return `${b.decls.join('\n')}
${si}
${perRowMain(per)}
  let blk = blockOf(si[ROWSEQ + row], p);
  let off = p % BS;
  if (e < ${Hk * D}u) {
    let h = e / ${D}u;
    let d = e % ${D}u;
    ${KC}[((blk * ${Hk}u + h) * BS + off) * ${D}u + d] = ${K}[row * ${op.k.act.width}u + ${op.k.col}u + e];
  }${
    V
      ? ` else {
    e -= ${Hk * D}u;
    let h = e / ${Dv}u;
    let d = e % ${Dv}u;
    ${VC}[((blk * ${Hk}u + h) * BS + off) * ${Dv}u + d] = ${V}[row * ${op.v!.act.width}u + ${op.v!.col}u + e];
  }`
      : ''
  }
}`;
}

/**
 * Rotary and the KV-cache write in one dispatch (steps with prefill rows, where attention reads every key
 * from the cache): q rotated in place (one thread per pair), each key element rotated from its pair and
 * written straight into the cache (the buffer's k stays as it was: nothing reads it after attention), each
 * value element copied. `rope` rotates q's heads then k's, as the plan's rotary ops did.
 */
export function ropeKvWgsl(b: Binder, op: AttentionOp, cache: CacheBuffers, rope: RotaryEmbedding, cs: GPUBuffer): string {
  const { numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv } = op;
  const { rotaryDim: RD, isNeoxStyle } = rope;
  const half = RD / 2;
  const X = b.act(op.q.act);
  const V = op.v ? b.act(op.v.act) : '';
  const KC = b.buffer(cache.k, 'kc', 'f32', 'read_write');
  const VC = op.v ? b.buffer(cache.v!, 'vc', 'f32', 'read_write') : '';
  const C = b.buffer(cs, 'cs', 'f32', 'read');
  const si = b.step();
  const nq = H * half;
  const nk = Hk * D;
  const per = nq + nk + (op.v ? Hk * Dv : 0);
  const W = op.q.act.width;
  // Element d < RD of a rotated head: its pair partner and the sign of the sine term.
  const pair = isNeoxStyle
    ? `let i = d % ${half}u; let lo = d < ${half}u; let a = ${X}[kb + i]; let z = ${X}[kb + i + ${half}u];`
    : `let i = d / 2u; let lo = d % 2u == 0u; let a = ${X}[kb + 2u * i]; let z = ${X}[kb + 2u * i + 1u];`;
  const [q1, q2] = isNeoxStyle ? ['i', `i + ${half}u`] : ['2u * i', '2u * i + 1u'];
  return `${b.decls.join('\n')}
${si}
${perRowMain(per)}
  let c0 = row * ${RD}u;
  if (e < ${nq}u) {
    let h = e / ${half}u;
    let i = e % ${half}u;
    let qb = row * ${W}u + ${op.q.col}u + h * ${D}u;
    let c = ${C}[c0 + i];
    let sn = ${C}[c0 + ${half}u + i];
    let a = ${X}[qb + ${q1}];
    let z = ${X}[qb + ${q2}];
    ${X}[qb + ${q1}] = a * c - z * sn;
    ${X}[qb + ${q2}] = z * c + a * sn;
    return;
  }
  e -= ${nq}u;
  let slot = blockOf(si[ROWSEQ + row], p) * BS + p % BS;
  if (e < ${nk}u) {
    let hk = e / ${D}u;
    let d = e % ${D}u;
    let kb = row * ${W}u + ${op.k.col}u + hk * ${D}u;
    var val = ${X}[kb + d];
    if (d < ${RD}u) {
      ${pair}
      let c = ${C}[c0 + i];
      let sn = ${C}[c0 + ${half}u + i];
      val = select(z * c + a * sn, a * c - z * sn, lo);
    }
    ${KC}[((slot / BS) * ${Hk}u + hk) * BS * ${D}u + (slot % BS) * ${D}u + d] = val;
    return;
  }${
    op.v
      ? `
  e -= ${nk}u;
  let hv = e / ${Dv}u;
  let dv = e % ${Dv}u;
  ${VC}[((slot / BS) * ${Hk}u + hv) * BS * ${Dv}u + (slot % BS) * ${Dv}u + dv] = ${V}[row * ${op.v.act.width}u + ${op.v.col}u + hv * ${Dv}u + dv];`
      : ''
  }
}`;
}

/** Workgroup memory (bytes) of `attentionWgsl` with GW heads per workgroup. */
export function attentionSharedBytes(op: AttentionOp, gw: number): number {
  const tpg = 256 / gw;
  const td = Math.min(op.vHeadDim, tpg);
  const dpt = Math.ceil(op.vHeadDim / td);
  const kg = Math.floor(tpg / td);
  const staged = gw > 1 ? tpg * (op.headDim + (op.v ? op.vHeadDim : 0)) : 0;
  return 4 * (gw * op.headDim + staged + tpg + 256 * 3 + 16 + (kg > 1 ? 256 * dpt : 0));
}

/**
 * Decode steps (every sequence one new row): rotary of q and k, the KV-cache write and attention in one
 * dispatch. Each workgroup rotates its query head and its row's key in workgroup memory, the first head of
 * each KV group writes the key (and value) into the cache, and the row's own key joins the softmax from
 * workgroup memory (the cache holds positions before it), so no workgroup waits on another's write.
 */
export interface FusedDecode {
  rope: RotaryEmbedding;
  /** The step's cos|sin rows of `rope` (`[T, rotaryDim]`). */
  cs: GPUBuffer;
}

export function attentionWgsl(b: Binder, op: AttentionOp, cache: CacheBuffers, gw: number, fused: FusedDecode | null = null): string {
  const { numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv } = op;
  if (fused && gw !== 1) throw new Error('attention: the fused decode runs a head per workgroup');
  const G = H / Hk;
  const TPG = 256 / gw;
  const TD = Math.min(Dv, TPG);
  const KG = Math.floor(TPG / TD);
  const DPT = Math.ceil(Dv / TD);
  const us = Array.from({ length: DPT }, (_, u) => u);
  const Q = b.act(op.q.act);
  const O = b.act(op.out.act);
  const vec = gw === 1 && D % 4 === 0;
  // The fused decode writes the cache: one read-write binding per cache buffer (a second, read-only view is not allowed).
  const access = fused ? 'read_write' : 'read';
  const KC = b.buffer(cache.k, vec ? 'kc4' : 'kc', vec ? 'vec4<f32>' : 'f32', access);
  // V from its own cache, or K's prefix (a scalar view of K when K is read as vec4 and only read).
  const VC = op.v ? b.buffer(cache.v!, 'vc', 'f32', access) : vec && !fused ? b.buffer(cache.k, 'kcs', 'f32', 'read') : KC;
  const Kx = fused ? b.act(op.k.act) : '';
  const Vx = fused && op.v ? b.act(op.v.act) : '';
  const CS = fused ? b.buffer(fused.cs, 'cs', 'f32', 'read') : '';
  const si = b.step();
  const stage = gw > 1;
  const vStride = op.v ? Dv : D;
  const vScalar = (i: string) => (VC === KC && vec ? `${KC}[(${i}) / 4u][(${i}) % 4u]` : `${VC}[${i}]`);
  const kAt = (t: string, e: string) => (stage ? `Ks[${t} * ${D}u + ${e}]` : `${KC}[slots[${t}] * ${D}u + ${e}]`);
  const vAt = (t: string, d: string) => (stage ? (op.v ? `Vs[${t} * ${Dv}u + ${d}]` : `Ks[${t} * ${D}u + ${d}]`) : vScalar(`slots[${t}] * ${vStride}u + ${d}`));
  const score = vec
    ? `for (var e = 0u; e < ${D / 4}u; e++) { dotv += dot(q4[e], ${KC}[slots[tl] * ${D / 4}u + e]); }`
    : `for (var e = 0u; e < ${D}u; e++) { dotv += qs[g * ${D}u + e] * ${kAt('tl', 'e')}; }`;
  const cap = op.logitsSoftCap;
  const capped = (x: string) => (cap === null ? x : `${f32Lit(cap)} * tanh(clamp(${x} / ${f32Lit(cap)}, -15.0, 15.0))`);
  const W = op.slidingWindow;
  const outAt = (d: string) => `${O}[row * ${op.out.act.width}u + ${op.out.col}u + (h0 + g) * ${Dv}u + ${d}]`;
  const qGet = (i: string) => (vec ? `q4[(${i}) / 4u][(${i}) % 4u]` : `qs[${i}]`);
  // Fused: rotate q and the row's key in workgroup memory, write key and value to the cache, score the row's own key.
  let prologue = '';
  let selfKey = '';
  if (fused) {
    const { rotaryDim: RD, isNeoxStyle, headSize } = fused.rope;
    if (headSize !== D) throw new Error(`attention: rotary head size ${headSize} is not the head dim ${D}`);
    const half = RD / 2;
    const [i1, i2] = isNeoxStyle ? ['i', `i + ${half}u`] : ['2u * i', '2u * i + 1u'];
    const rot = (get: (i: string) => string) => `{
      let a = ${get(i1)};
      let z = ${get(i2)};
      ${get(i1)} = a * c - z * sn;
      ${get(i2)} = z * c + a * sn;
    }`;
    const kb = `row * ${op.k.act.width}u + ${op.k.col}u + hk * ${D}u`;
    const vb = op.v ? `row * ${op.v.act.width}u + ${op.v.col}u + hk * ${Dv}u` : '';
    prologue = `
  for (var i = lid; i < ${D}u; i += 256u) { kself[i] = ${Kx}[${kb} + i]; }
  ${op.v ? `for (var i = lid; i < ${Dv}u; i += 256u) { vself[i] = ${Vx}[${vb} + i]; }` : ''}
  workgroupBarrier();
  if (lid < ${half}u) {
    let i = lid;
    let c = ${CS}[row * ${RD}u + i];
    let sn = ${CS}[row * ${RD}u + ${half}u + i];
    ${rot(qGet)}
    ${rot((i) => `kself[${i}]`)}
  }
  workgroupBarrier();
  let own = (blockOf(seq, p) * ${Hk}u + hk) * BS + p % BS;
  if (h0 % ${G}u == 0u) {
    ${vec ? `for (var i = lid; i < ${D / 4}u; i += 256u) { ${KC}[own * ${D / 4}u + i] = vec4<f32>(kself[4u * i], kself[4u * i + 1u], kself[4u * i + 2u], kself[4u * i + 3u]); }` : `for (var i = lid; i < ${D}u; i += 256u) { ${KC}[own * ${D}u + i] = kself[i]; }`}
    ${op.v ? `for (var i = lid; i < ${Dv}u; i += 256u) { ${VC}[own * ${Dv}u + i] = vself[i]; }` : ''}
  }
  if (lid == 0u) {
    var sd = 0.0;
    for (var e = 0u; e < ${D}u; e++) { sd += ${qGet('e')} * kself[e]; }
    sself = ${capped(`sd * ${f32Lit(op.scale)}`)};
  }
  workgroupBarrier();`;
    const vSelf = (d: string) => (op.v ? `vself[${d}]` : `kself[${d}]`);
    selfKey = `
    let mF = max(m, sself);
    let aF = exp(m - mF);
    let eF = exp(sself - mF);
    L = L * aF + eF;
    ${us.map((u) => `if (t + ${u * TD}u < ${Dv}u) { o${u} = o${u} * aF + eF * ${vSelf(`t + ${u * TD}u`)}; }`).join('\n    ')}`;
  }
  const merge =
    KG > 1
      ? `${us.map((u) => `accS[lid * ${DPT}u + ${u}u] = acc${u};`).join(' ')}
  lS[lid] = lsum;
  workgroupBarrier();
  if (kgi == 0u) {
    var L = 0.0;
    ${us.map((u) => `var o${u} = 0.0;`).join(' ')}
    for (var i = 0u; i < ${KG}u; i++) {
      let src = g * ${TPG}u + i * ${TD}u + t;
      L += lS[src];
      ${us.map((u) => `o${u} += accS[src * ${DPT}u + ${u}u];`).join(' ')}
    }`
      : `if (kgi == 0u) {
    var L = lsum;
    ${us.map((u) => `var o${u} = acc${u};`).join(' ')}`;
  return `${b.decls.join('\n')}
${si}
${vec ? `var<workgroup> q4 : array<vec4<f32>, ${D / 4}>;` : `var<workgroup> qs : array<f32, ${gw * D}>;`}
${stage ? `var<workgroup> Ks : array<f32, ${TPG * D}>;` : ''}
${stage && op.v ? `var<workgroup> Vs : array<f32, ${TPG * Dv}>;` : ''}
${fused ? `var<workgroup> kself : array<f32, ${D}>;\n${op.v ? `var<workgroup> vself : array<f32, ${Dv}>;` : ''}\nvar<workgroup> sself : f32;` : ''}
var<workgroup> slots : array<u32, ${TPG}>;
var<workgroup> red : array<f32, 256>;
${TPG >= 32 ? `var<workgroup> red2 : array<f32, ${(256 / 16)}>;` : ''}
var<workgroup> pr : array<f32, 256>;
var<workgroup> lS : array<f32, 256>;
${KG > 1 ? `var<workgroup> accS : array<f32, ${256 * DPT}>;` : ''}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let h0 = wid.x * ${gw}u;
  let row = wid.y;
  if (row >= si[0]) { return; }
  let hk = h0 / ${G}u;
  let seq = si[ROWSEQ + row];
  let p = si[POS + row];
  // Keys read from the cache: positions lo .. n − 1 (the fused decode scores its own key apart).
  let n = p + ${fused ? '0u' : '1u'};
  ${W === null ? 'let lo = 0u;' : `let lo = select(0u, p + 1u - ${W}u, p + 1u > ${W}u);`}
  let qb = row * ${op.q.act.width}u + ${op.q.col}u + h0 * ${D}u;
  ${vec ? `if (lid < ${D / 4}u) { q4[lid] = vec4<f32>(${Q}[qb + 4u * lid], ${Q}[qb + 4u * lid + 1u], ${Q}[qb + 4u * lid + 2u], ${Q}[qb + 4u * lid + 3u]); }` : `for (var i = lid; i < ${gw * D}u; i += 256u) { qs[i] = ${Q}[qb + i]; }`}
  ${prologue}
  let g = lid / ${TPG}u;
  let tl = lid % ${TPG}u;
  let kgi = tl / ${TD}u;
  let t = tl % ${TD}u;
  var m = -1e30;
  var lsum = 0.0;
  ${us.map((u) => `var acc${u} = 0.0;`).join(' ')}
  for (var t0 = lo; t0 < n; t0 += ${TPG}u) {
    let tile = min(${TPG}u, n - t0);
    if (lid < tile) {
      let j = t0 + lid;
      slots[lid] = (blockOf(seq, j) * ${Hk}u + hk) * BS + j % BS;
    }
    workgroupBarrier();
    ${
      stage
        ? `for (var i = lid; i < ${TPG * D}u; i += 256u) {
      let kt = i / ${D}u;
      var kv = 0.0;
      if (kt < tile) { kv = ${KC}[slots[kt] * ${D}u + i % ${D}u]; }
      Ks[i] = kv;
    }
    ${
      op.v
        ? `for (var i = lid; i < ${TPG * Dv}u; i += 256u) {
      let kt = i / ${Dv}u;
      var vv = 0.0;
      if (kt < tile) { vv = ${VC}[slots[kt] * ${Dv}u + i % ${Dv}u]; }
      Vs[i] = vv;
    }`
        : ''
    }
    workgroupBarrier();`
        : ''
    }
    var s = -1e30;
    if (tl < tile) {
      var dotv = 0.0;
      ${score}
      s = ${capped(`dotv * ${f32Lit(op.scale)}`)};
    }
    red[lid] = s;
    workgroupBarrier();
    ${
      TPG >= 32
        ? `// Two levels (${TPG / 16} maxima of 16, then their max) instead of a tree: two barriers, the same max.
    if (tl < ${TPG / 16}u) {
      var x = red[g * ${TPG}u + tl * 16u];
      for (var j = 1u; j < 16u; j++) { x = max(x, red[g * ${TPG}u + tl * 16u + j]); }
      red2[g * ${TPG / 16}u + tl] = x;
    }
    workgroupBarrier();
    var tmax = red2[g * ${TPG / 16}u];
    for (var j = 1u; j < ${TPG / 16}u; j++) { tmax = max(tmax, red2[g * ${TPG / 16}u + j]); }
    let mNew = max(m, tmax);`
        : `for (var st = ${TPG / 2}u; st > 0u; st >>= 1u) {
      if (tl < st) { red[lid] = max(red[lid], red[lid + st]); }
      workgroupBarrier();
    }
    let mNew = max(m, red[g * ${TPG}u]);`
    }
    var e = 0.0;
    if (tl < tile) { e = exp(s - mNew); }
    pr[lid] = e;
    workgroupBarrier();
    let alpha = exp(m - mNew);
    lsum *= alpha;
    ${us.map((u) => `acc${u} *= alpha;`).join(' ')}
    if (kgi < ${KG}u) {
      for (var j = kgi; j < tile; j += ${KG}u) {
        let pj = pr[g * ${TPG}u + j];
        lsum += pj;
        ${us.map((u) => `{ let d = t + ${u * TD}u; if (d < ${Dv}u) { acc${u} += pj * ${vAt('j', 'd')}; } }`).join('\n        ')}
      }
    }
    m = mNew;
    workgroupBarrier();
  }
  ${merge}${selfKey}
    ${us.map((u) => `if (t + ${u * TD}u < ${Dv}u) { ${outAt(`t + ${u * TD}u`)} = o${u} / L; }`).join('\n    ')}
  }
}`;
}

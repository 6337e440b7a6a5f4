/**
 * Decode attention with vec4 reads (every sequence one new row; head dims multiples of 4): rotary of q and
 * the row's key, the KV-cache write and attention in one dispatch, one workgroup of 256 threads per (query
 * head, row). Against `attentionWgsl`'s fused decode:
 * - the row's own key is scored and weighted inside the key tiles (from workgroup memory: no workgroup
 *   reads another's cache write), not by one thread after them;
 * - P·V reads values as vec4: Dv/4 threads per key, 256/(Dv/4) keys in flight (16 for Dv 64 against 4);
 * - the tile max is one `subgroupMax` per subgroup and one pass over their maxima where the device has
 *   subgroups of a known size (`sg`), else two levels through workgroup memory.
 * Same online softmax and fp32 sums per key as the scalar kernel up to the order of the final merge.
 */
import type { AttentionOp } from '../ops.js';
import type { CacheBuffers, FusedDecode } from './wgsl-attention.js';
import { f32Lit, type Binder } from './wgsl-common.js';

/** Whether `decodeAttentionWgsl` takes this op: head dims multiples of 4, a value row within 1024 dims. */
export function decodeAttentionFits(op: AttentionOp): boolean {
  return op.headDim % 4 === 0 && op.vHeadDim % 4 === 0 && op.vHeadDim <= 1024 && op.headDim <= 1024;
}

/** `sg`: the device's subgroup size for the tile max (null: workgroup memory only). */
export function decodeAttentionWgsl(b: Binder, op: AttentionOp, cache: CacheBuffers, fused: FusedDecode, sg: number | null): string {
  const { numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv } = op;
  if (!decodeAttentionFits(op)) throw new Error(`decode attention: head dims ${D} / ${Dv} are not multiples of 4`);
  const { rotaryDim: RD, isNeoxStyle, headSize } = fused.rope;
  if (headSize !== D) throw new Error(`decode attention: rotary head size ${headSize} is not the head dim ${D}`);
  const G = H / Hk;
  const D4 = D / 4;
  const DV4 = Dv / 4;
  const KG = Math.floor(256 / DV4);
  const useSg = sg !== null && sg >= 4 && 256 % sg === 0;
  const Q = b.act(op.q.act);
  const Kx = b.act(op.k.act);
  const Vx = op.v ? b.act(op.v.act) : '';
  const O = b.act(op.out.act);
  const KC = b.buffer(cache.k, 'kc4', 'vec4<f32>', 'read_write');
  const VC = op.v ? b.buffer(cache.v!, 'vc4', 'vec4<f32>', 'read_write') : KC;
  const CS = b.buffer(fused.cs, 'cs', 'f32', 'read');
  const si = b.step();
  const vStride4 = op.v ? DV4 : D4;
  const half = RD / 2;
  const [i1, i2] = isNeoxStyle ? ['i', `i + ${half}u`] : ['2u * i', '2u * i + 1u'];
  const el = (arr: string, i: string) => `${arr}[(${i}) / 4u][(${i}) % 4u]`;
  const rot = (arr: string) => `{
      let a = ${el(arr, i1)};
      let z = ${el(arr, i2)};
      ${el(arr, i1)} = a * c - z * sn;
      ${el(arr, i2)} = z * c + a * sn;
    }`;
  const cap = op.logitsSoftCap;
  const capped = (x: string) => (cap === null ? x : `${f32Lit(cap)} * tanh(clamp(${x} / ${f32Lit(cap)}, -15.0, 15.0))`);
  const W = op.slidingWindow;
  const row4 = (buf: string, base: string, i: string) => `vec4<f32>(${buf}[${base} + 4u * ${i}], ${buf}[${base} + 4u * ${i} + 1u], ${buf}[${base} + 4u * ${i} + 2u], ${buf}[${base} + 4u * ${i} + 3u])`;
  const tileMax = useSg
    ? `let sm = subgroupMax(s);
    if (lid % ${sg}u == 0u) { red2[lid / ${sg}u] = sm; }
    workgroupBarrier();
    var tmax = red2[0];
    for (var j = 1u; j < ${256 / sg!}u; j++) { tmax = max(tmax, red2[j]); }`
    : `red[lid] = s;
    workgroupBarrier();
    if (lid < 16u) {
      var x = red[lid * 16u];
      for (var j = 1u; j < 16u; j++) { x = max(x, red[lid * 16u + j]); }
      red2[lid] = x;
    }
    workgroupBarrier();
    var tmax = red2[0];
    for (var j = 1u; j < 16u; j++) { tmax = max(tmax, red2[j]); }`;
  return `${useSg ? 'enable subgroups;\n' : ''}${b.decls.join('\n')}
${si}
var<workgroup> q4 : array<vec4<f32>, ${D4}>;
var<workgroup> k4s : array<vec4<f32>, ${D4}>;
${op.v ? `var<workgroup> v4s : array<vec4<f32>, ${DV4}>;` : ''}
var<workgroup> slots : array<u32, 256>;
${useSg ? '' : 'var<workgroup> red : array<f32, 256>;'}
var<workgroup> red2 : array<f32, ${useSg ? 256 / sg! : 16}>;
var<workgroup> pr : array<f32, 256>;
var<workgroup> accS : array<vec4<f32>, 256>;
var<workgroup> lS : array<f32, 256>;
const SELF = 0xffffffffu;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let h = wid.x;
  let row = wid.y;
  if (row >= si[0]) { return; }
  let hk = h / ${G}u;
  let seq = si[ROWSEQ + row];
  let p = si[POS + row];
  ${W === null ? 'let lo = 0u;' : `let lo = select(0u, p + 1u - ${W}u, p + 1u > ${W}u);`}
  let qb = row * ${op.q.act.width}u + ${op.q.col}u + h * ${D}u;
  let kb = row * ${op.k.act.width}u + ${op.k.col}u + hk * ${D}u;
  if (lid < ${D4}u) {
    q4[lid] = ${row4(Q, 'qb', 'lid')};
    k4s[lid] = ${row4(Kx, 'kb', 'lid')};
  }
  ${op.v ? `if (lid < ${DV4}u) { let vb = row * ${op.v.act.width}u + ${op.v.col}u + hk * ${Dv}u; v4s[lid] = ${row4(Vx, 'vb', 'lid')}; }` : ''}
  workgroupBarrier();
  if (lid < ${half}u) {
    let i = lid;
    let c = ${CS}[row * ${RD}u + i];
    let sn = ${CS}[row * ${RD}u + ${half}u + i];
    ${rot('q4')}
    ${rot('k4s')}
  }
  workgroupBarrier();
  if (h % ${G}u == 0u) {
    let own = (blockOf(seq, p) * ${Hk}u + hk) * BS + p % BS;
    if (lid < ${D4}u) { ${KC}[own * ${D4}u + lid] = k4s[lid]; }
    ${op.v ? `if (lid < ${DV4}u) { ${VC}[own * ${DV4}u + lid] = v4s[lid]; }` : ''}
  }
  let kgi = lid / ${DV4}u;
  let t4 = lid % ${DV4}u;
  var m = -1e30;
  var lsum = 0.0;
  var acc = vec4<f32>(0.0);
  let n = p + 1u;
  for (var t0 = lo; t0 < n; t0 += 256u) {
    let tile = min(256u, n - t0);
    var s = -1e30;
    if (lid < tile) {
      let j = t0 + lid;
      var dotv = 0.0;
      if (j == p) {
        slots[lid] = SELF;
        for (var e = 0u; e < ${D4}u; e++) { dotv += dot(q4[e], k4s[e]); }
      } else {
        let slot = (blockOf(seq, j) * ${Hk}u + hk) * BS + j % BS;
        slots[lid] = slot;
        for (var e = 0u; e < ${D4}u; e++) { dotv += dot(q4[e], ${KC}[slot * ${D4}u + e]); }
      }
      s = ${capped(`dotv * ${f32Lit(op.scale)}`)};
    }
    ${tileMax}
    let mNew = max(m, tmax);
    var ex = 0.0;
    if (lid < tile) { ex = exp(s - mNew); }
    pr[lid] = ex;
    workgroupBarrier();
    let alpha = exp(m - mNew);
    lsum *= alpha;
    acc *= alpha;
    if (kgi < ${KG}u) {
      for (var j = kgi; j < tile; j += ${KG}u) {
        let pj = pr[j];
        lsum += pj;
        let sl = slots[j];
        var vv = ${op.v ? 'v4s[t4]' : 'k4s[t4]'};
        if (sl != SELF) { vv = ${VC}[sl * ${vStride4}u + t4]; }
        acc += pj * vv;
      }
    }
    m = mNew;
    workgroupBarrier();
  }
  accS[lid] = acc;
  lS[lid] = lsum;
  workgroupBarrier();
  if (lid < ${DV4}u) {
    var L = 0.0;
    var o = vec4<f32>(0.0);
    for (var i = 0u; i < ${KG}u; i++) {
      L += lS[i * ${DV4}u + lid];
      o += accS[i * ${DV4}u + lid];
    }
    o = o / L;
    let ob = row * ${op.out.act.width}u + ${op.out.col}u + h * ${Dv}u + 4u * lid;
    ${O}[ob] = o.x;
    ${O}[ob + 1u] = o.y;
    ${O}[ob + 2u] = o.z;
    ${O}[ob + 3u] = o.w;
  }
}`;
}

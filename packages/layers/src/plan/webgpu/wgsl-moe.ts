/**
 * WGSL for the moe op's routed experts on the WebGPU executor (routing runs
 * on the host: `moe-experts.ts`). The step's routing buffer holds each local
 * expert slot's `[offset, count]`, every chosen (token, weight) pair grouped by
 * expert, the slots with tokens, and each token's pairs in ascending expert
 * id. The experts' linears are the plan's linear kernels (`MatmulSpec.route`
 * reads these through `routeDecl`); `combineWgsl` sums each token's rows.
 */
import type { ActView, PlanAct } from '../ops.js';
import type { Binder } from './wgsl-common.js';

const MAIN = '@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32)';

/**
 * u32 offsets of the routing buffer: slot table `[experts, 2]` (offset, count), tokens `[entries]`, weights
 * (f32 bits) `[entries]`, the number of slots with tokens and those slots in ascending order, then per token
 * its pairs in ascending expert id (`[maxEntries]` as `[tokens, topK]`, 0xffffffff past its last).
 */
export function routeLayout(experts: number, maxEntries: number): { tokens: number; weights: number; active: number; pairs: number; words: number } {
  const tokens = 2 * experts;
  const weights = tokens + maxEntries;
  const active = weights + maxEntries;
  const pairs = active + 1 + experts;
  return { tokens, weights, active, pairs, words: pairs + maxEntries };
}

export interface RouteDecl {
  decl: string;
  init: string;
  count: string;
}

/**
 * The routing of one expert slot for the plan's linear kernels (MatmulSpec.route): declares `SLOT` and
 * `count()`, `entry()` (its first pair), `token(j)`, `weight(j)`; `init` starts `main`: the slot given, or
 * (null: grouped) the `wid.y`-th slot with tokens, returning when there are fewer; `count` is the slot's row
 * count as an expression `main` may branch on before a barrier.
 */
export function routeDecl(b: Binder, route: GPUBuffer, slot: number | null, experts: number, maxEntries: number): RouteDecl {
  const R = b.buffer(route, 'route', 'u32', 'read');
  const l = routeLayout(experts, maxEntries);
  const slotExpr = slot === null ? `${R}[${l.active + 1}u + wid.y]` : `${slot}u`;
  return {
    // For `main`'s control flow: read from the buffer there, not through SLOT (a private variable is not uniform to WGSL).
    count: `${R}[2u * ${slotExpr} + 1u]`,
    decl: `var<private> SLOT : u32;
fn count() -> u32 { return ${R}[2u * SLOT + 1u]; }
fn entry() -> u32 { return ${R}[2u * SLOT]; }
fn token(j : u32) -> u32 { return ${R}[${l.tokens}u + entry() + j]; }
fn weight(j : u32) -> f32 { return bitcast<f32>(${R}[${l.weights}u + entry() + j]); }`,
    init: slot === null ? `if (wid.y >= ${R}[${l.active}u]) { return; }
  SLOT = ${R}[${l.active + 1}u + wid.y];` : `SLOT = ${slot}u;`,
  };
}

/**
 * out[t] = Σ over t's pairs in ascending expert id of weight · y[pair] (y: one row per pair), from zero, as
 * the tfjs path adds its experts' rows. One thread per output element.
 */
export function combineWgsl(b: Binder, ye: PlanAct, out: ActView, route: GPUBuffer, topK: number, experts: number, maxEntries: number): string {
  const YE = b.act(ye);
  const O = b.act(out.act);
  const R = b.buffer(route, 'route', 'u32', 'read');
  const si = b.step();
  const l = routeLayout(experts, maxEntries);
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  let idx = (wid.y * 65535u + wid.x) * 256u + lid;
  let t = idx / ${out.width}u;
  if (t >= si[0]) { return; }
  let c = idx % ${out.width}u;
  var acc = 0.0;
  for (var k = 0u; k < ${topK}u; k++) {
    let e = ${R}[${l.pairs}u + t * ${topK}u + k];
    if (e == 0xffffffffu) { break; }
    acc = acc + ${YE}[e * ${ye.width}u + c] * bitcast<f32>(${R}[${l.weights}u + e]);
  }
  ${O}[t * ${out.act.width}u + ${out.col}u + c] = acc;
}`;
}

/** What the device router needs of a moe op (moe/router.ts's rules, resolved). */
export interface RouterSpec {
  numExperts: number;
  topK: number;
  scoring: 'softmax' | 'sigmoid';
  /** Group-limited selection: n_group groups, topk_group kept (ties to the lower group). */
  groups: { n: number; keep: number } | null;
  /** Group score = its top-2 sum (noaux_tc or a bias), else its max; weights = the unbiased scores. */
  topTwo: boolean;
  renormalize: boolean;
  /** Multiplies the weights (null: 1). */
  scale: number | null;
  /** Global ids of this rank's experts, ascending (slot order). */
  localIds: readonly number[];
}

/**
 * Routing on the device for steps of at most 16 rows (no read-back): one thread per row computes its
 * scores, choice, groups, top-k and weights in fp32 as `routeHost` does (ties to the lower index), then one
 * thread buckets the pairs by local expert in ascending id into the routing buffer `moe-experts.ts` reads.
 */
export function routerWgsl(b: Binder, logits: ActView, route: GPUBuffer, bias: GPUBuffer | null, r: RouterSpec, maxEntries: number): string {
  const L = b.act(logits.act);
  const R = b.buffer(route, 'route', 'u32', 'read_write');
  const B = bias ? b.buffer(bias, 'rbias', 'f32', 'read') : null;
  const si = b.step();
  const E = r.numExperts;
  const K = r.topK;
  const NL = r.localIds.length;
  const l = routeLayout(NL, maxEntries);
  const g = r.groups;
  const per = g ? E / g.n : E;
  const lit = (x: number) => (Number.isInteger(x) ? `${x}.0` : `${Math.fround(x)}`);
  return `${b.decls.join('\n')}
${si}
var<private> EIDS : array<u32, ${NL}> = array<u32, ${NL}>(${r.localIds.map((i) => `${i}u`).join(', ')});
var<workgroup> ids : array<u32, ${16 * K}>;
var<workgroup> wts : array<f32, ${16 * K}>;
@compute @workgroup_size(16)
fn main(@builtin(local_invocation_index) lid : u32) {
  let T = si[0];
  if (lid < T) {
    var sc : array<f32, ${E}>;
    var ch : array<f32, ${E}>;
    let base = lid * ${logits.act.width}u + ${logits.col}u;
    ${
      r.scoring === 'softmax'
        ? `var mx = -3.4e38;
    for (var e = 0u; e < ${E}u; e++) { mx = max(mx, ${L}[base + e]); }
    var tot = 0.0;
    for (var e = 0u; e < ${E}u; e++) { sc[e] = exp(${L}[base + e] - mx); tot += sc[e]; }
    for (var e = 0u; e < ${E}u; e++) { sc[e] = sc[e] / tot; }`
        : `for (var e = 0u; e < ${E}u; e++) { sc[e] = 1.0 / (1.0 + exp(-${L}[base + e])); }`
    }
    for (var e = 0u; e < ${E}u; e++) { ch[e] = sc[e]${B ? ` + ${B}[e]` : ''}; }
    ${
      g && g.keep < g.n
        ? `var gs : array<f32, ${g.n}>;
    for (var q = 0u; q < ${g.n}u; q++) {
      var a = -3.4e38;
      var z = -3.4e38;
      for (var e = q * ${per}u; e < (q + 1u) * ${per}u; e++) {
        let v = ch[e];
        if (v > a) { z = a; a = v; } else if (v > z) { z = v; }
      }
      gs[q] = ${r.topTwo ? 'a + z' : 'a'};
    }
    var keep : array<u32, ${g.n}>;
    for (var j = 0u; j < ${g.keep}u; j++) {
      var best = 0u;
      var bv = -3.4e38;
      for (var q = 0u; q < ${g.n}u; q++) { if (keep[q] == 0u && gs[q] > bv) { bv = gs[q]; best = q; } }
      keep[best] = 1u;
    }
    for (var e = 0u; e < ${E}u; e++) { if (keep[e / ${per}u] == 0u) { ch[e] = 0.0; } }`
        : ''
    }
    var taken : array<u32, ${E}>;
    var sum = 0.0;
    for (var k = 0u; k < ${K}u; k++) {
      var best = 0u;
      var bv = -3.4e38;
      for (var e = 0u; e < ${E}u; e++) { if (taken[e] == 0u && ch[e] > bv) { bv = ch[e]; best = e; } }
      taken[best] = 1u;
      let w = ${r.topTwo ? 'sc[best]' : 'bv'};
      ids[lid * ${K}u + k] = best;
      wts[lid * ${K}u + k] = w;
      sum += w;
    }
    ${r.renormalize ? `let d = sum + 1e-20;\n    for (var k = 0u; k < ${K}u; k++) { wts[lid * ${K}u + k] = wts[lid * ${K}u + k] / d; }` : ''}
    ${r.scale !== null ? `for (var k = 0u; k < ${K}u; k++) { wts[lid * ${K}u + k] = wts[lid * ${K}u + k] * ${lit(r.scale)}; }` : ''}
  }
  workgroupBarrier();
  if (lid == 0u) {
    var filled : array<u32, 16>;
    for (var i = 0u; i < T * ${K}u; i++) { ${R}[${l.pairs}u + i] = 0xffffffffu; }
    var at = 0u;
    var nact = 0u;
    for (var s = 0u; s < ${NL}u; s++) {
      ${R}[2u * s] = at;
      var c = 0u;
      for (var t = 0u; t < T; t++) {
        for (var k = 0u; k < ${K}u; k++) {
          if (ids[t * ${K}u + k] != EIDS[s]) { continue; }
          ${R}[${l.tokens}u + at + c] = t;
          ${R}[${l.weights}u + at + c] = bitcast<u32>(wts[t * ${K}u + k]);
          ${R}[${l.pairs}u + t * ${K}u + filled[t]] = at + c;
          filled[t] += 1u;
          c += 1u;
        }
      }
      ${R}[2u * s + 1u] = c;
      at += c;
      if (c > 0u) { ${R}[${l.active + 1}u + nact] = s; nact += 1u; }
    }
    ${R}[${l.active}u] = nact;
  }
}`;
}

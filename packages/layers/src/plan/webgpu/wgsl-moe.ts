/**
 * WGSL for the moe op's routed experts on the WebGPU executor (`moe-experts.ts`), with no host round trip:
 * `routerWgsl` routes every row of the step (moe/router.ts's rules in fp32), counts the pairs per local
 * expert, takes the prefix sums, scatters each (token, weight) pair into its expert's run and lists the
 * step's row tiles (expert slot, first row); the experts' linears are the plan's tiled GEMV / GEMM over those
 * tiles (`MatmulSpec.route` reads them through `routeDecl`, one workgroup row per tile on a grid sized for the
 * most tiles the step can have: workgroups past the step's tiles return at once); `combineWgsl` sums each
 * token's rows in ascending expert id.
 */
import type { ActView, PlanAct } from '../ops.js';
import type { Binder } from './wgsl-common.js';

const MAIN = '@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32)';

/**
 * Rows per tile at a step of T rows: one expert's rows go through its weights in tiles of this many (the
 * GEMV's activation rows up to 64 step rows, the GEMM's 64-row tile above). Few rows per expert at decode
 * sizes: small tiles keep the GEMV's work near the rows there are.
 */
export const MOE_TILE_STEPS: readonly (readonly [number, number])[] = [
  [1, 1],
  [4, 2],
  [16, 4],
  [64, 8],
];
export const MOE_GEMM_TILE = 64;

export function moeTileRows(T: number): number {
  for (const [upTo, rows] of MOE_TILE_STEPS) if (T <= upTo) return rows;
  return MOE_GEMM_TILE;
}

/** The most tiles a step of T rows can list over `experts` local experts (each with tokens adds at most one partial tile). */
export function moeTileBound(T: number, topK: number, experts: number): number {
  const pairs = T * topK;
  const tr = moeTileRows(T);
  return Math.floor((pairs + Math.min(experts, pairs) * (tr - 1)) / tr);
}

/**
 * u32 offsets of the routing buffer: per local expert slot its pair count and first pair; the pairs grouped
 * by slot (tokens, weights as f32 bits); each token's pairs in ascending expert id (`[tokens, topK]`,
 * 0xffffffff past its last); the router's per-row choice (slot, weight) before the scatter; the number of
 * tiles and each tile's (slot, first row within the slot's run).
 */
export function routeLayout(experts: number, maxEntries: number, maxTiles: number) {
  const counts = 0;
  const offsets = counts + experts;
  const tokens = offsets + experts;
  const weights = tokens + maxEntries;
  const pairs = weights + maxEntries;
  const sel = pairs + maxEntries;
  const selW = sel + maxEntries;
  const numTiles = selW + maxEntries;
  const tiles = numTiles + 1;
  return { counts, offsets, tokens, weights, pairs, sel, selW, numTiles, tiles, words: tiles + 2 * maxTiles };
}
export type RouteLayout = ReturnType<typeof routeLayout>;

export interface RouteDecl {
  decl: string;
  init: string;
  count: string;
}

/**
 * One tile of a routed step for the plan's linear kernels (MatmulSpec.route): `init` starts `main` by taking
 * the `wid.y`-th tile (returning when the step has fewer), declares `SLOT` (its expert slot) and the tile's
 * `count()` (rows, at most `tile`), `entry()` (its first pair), `token(j)`; `count` is the tile's row count
 * as an expression `main` may branch on before a barrier.
 */
export function routeDecl(b: Binder, route: GPUBuffer, l: RouteLayout, tile: number): RouteDecl {
  const R = b.buffer(route, 'route', 'u32', 'read');
  const slot = `${R}[${l.tiles}u + 2u * wid.y]`;
  const row0 = `${R}[${l.tiles}u + 2u * wid.y + 1u]`;
  return {
    // For `main`'s control flow: read from the buffer there, not through SLOT (a private variable is not uniform to WGSL).
    count: `min(${tile}u, ${R}[${l.counts}u + ${slot}] - ${row0})`,
    decl: `var<private> SLOT : u32;
var<private> ROW0 : u32;
fn count() -> u32 { return min(${tile}u, ${R}[${l.counts}u + SLOT] - ROW0); }
fn entry() -> u32 { return ${R}[${l.offsets}u + SLOT] + ROW0; }
fn token(j : u32) -> u32 { return ${R}[${l.tokens}u + entry() + min(j, count() - 1u)]; }`,
    init: `if (wid.y >= ${R}[${l.numTiles}u]) { return; }
  SLOT = ${slot};
  ROW0 = ${row0};`,
  };
}

/**
 * out[t] = Σ over t's pairs in ascending expert id of weight · y[pair] (y: one row per pair), from zero, as
 * the tfjs path adds its experts' rows. One thread per output element.
 */
export function combineWgsl(b: Binder, ye: PlanAct, out: ActView, route: GPUBuffer, topK: number, l: RouteLayout): string {
  const YE = b.act(ye);
  const O = b.act(out.act);
  const R = b.buffer(route, 'route', 'u32', 'read');
  const si = b.step();
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

/** Experts the device router takes (its per-row score arrays live in private memory). */
export const ROUTER_MAX_EXPERTS = 256;

/** The per-row routing (scores, choice, groups, top-k, weights) of row `t` into `ids` / `wts`, as `routeHost`. */
function routeRow(L: string, B: string | null, logits: ActView, r: RouterSpec): string {
  const E = r.numExperts;
  const K = r.topK;
  const g = r.groups;
  const per = g ? E / g.n : E;
  const lit = (x: number) => (Number.isInteger(x) ? `${x}.0` : `${Math.fround(x)}`);
  return `var sc : array<f32, ${E}>;
    var ch : array<f32, ${E}>;
    let base = t * ${logits.act.width}u + ${logits.col}u;
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
    var keep = array<u32, ${g.n}>();
    for (var j = 0u; j < ${g.keep}u; j++) {
      var best = 0u;
      var bv = -3.4e38;
      for (var q = 0u; q < ${g.n}u; q++) { if (keep[q] == 0u && gs[q] > bv) { bv = gs[q]; best = q; } }
      keep[best] = 1u;
    }
    for (var e = 0u; e < ${E}u; e++) { if (keep[e / ${per}u] == 0u) { ch[e] = 0.0; } }`
        : ''
    }
    // Zeroed explicitly for every row (a thread routes several rows above 256).
    var taken = array<u32, ${E}>();
    var ids : array<u32, ${K}>;
    var wts : array<f32, ${K}>;
    var sum = 0.0;
    for (var k = 0u; k < ${K}u; k++) {
      var best = 0u;
      var bv = -3.4e38;
      for (var e = 0u; e < ${E}u; e++) { if (taken[e] == 0u && ch[e] > bv) { bv = ch[e]; best = e; } }
      taken[best] = 1u;
      let w = ${r.topTwo ? 'sc[best]' : 'bv'};
      ids[k] = best;
      wts[k] = w;
      sum += w;
    }
    ${r.renormalize ? `let d = sum + 1e-20;\n    for (var k = 0u; k < ${K}u; k++) { wts[k] = wts[k] / d; }` : ''}
    ${r.scale !== null ? `for (var k = 0u; k < ${K}u; k++) { wts[k] = wts[k] * ${lit(r.scale)}; }` : ''}`;
}

/**
 * Routing on the device for a step of any size (no read-back), one workgroup: each thread routes rows
 * lid, lid + 256, … (`routeRow`), orders each row's choices by local slot (ascending expert id; experts of
 * other ranks dropped) and counts them per slot; one thread takes the prefix sums and lists the tiles of
 * `moeTileRows(T)` rows; each thread then scatters its rows' pairs into their slots' runs (the order within a
 * run does not matter: every pair row is computed on its own) and lists each token's pair positions.
 */
export function routerWgsl(b: Binder, logits: ActView, route: GPUBuffer, bias: GPUBuffer | null, r: RouterSpec, l: RouteLayout): string {
  const L = b.act(logits.act);
  const R = b.buffer(route, 'route', 'u32', 'read_write');
  const B = bias ? b.buffer(bias, 'rbias', 'f32', 'read') : null;
  const si = b.step();
  const K = r.topK;
  const NL = r.localIds.length;
  const slotOf = Array.from({ length: r.numExperts }, (_, e) => r.localIds.indexOf(e));
  // WGSL has no ?: — a select chain from the largest bound down.
  const tr = MOE_TILE_STEPS.reduceRight((acc, [upTo, rows]) => `select(${acc}, ${rows}u, T <= ${upTo}u)`, `${MOE_GEMM_TILE}u`);
  return `${b.decls.join('\n')}
${si}
var<private> SLOTOF : array<u32, ${r.numExperts}> = array<u32, ${r.numExperts}>(${slotOf.map((s) => (s < 0 ? '0xffffffffu' : `${s}u`)).join(', ')});
var<workgroup> cnt : array<atomic<u32>, ${NL}>;
var<workgroup> cur : array<atomic<u32>, ${NL}>;
var<workgroup> offs : array<u32, ${NL}>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid : u32) {
  let T = si[0];
  for (var s = lid; s < ${NL}u; s += 256u) { atomicStore(&cnt[s], 0u); atomicStore(&cur[s], 0u); }
  workgroupBarrier();
  for (var t = lid; t < T; t += 256u) {
    ${routeRow(L, B, logits, r)}
    var sl : array<u32, ${K}>;
    for (var k = 0u; k < ${K}u; k++) { sl[k] = SLOTOF[ids[k]]; }
    // Insertion sort by slot (ascending expert id; other ranks' experts, 0xffffffff, last).
    for (var i = 1u; i < ${K}u; i++) {
      var j = i;
      while (j > 0u && sl[j - 1u] > sl[j]) {
        let s = sl[j]; sl[j] = sl[j - 1u]; sl[j - 1u] = s;
        let w = wts[j]; wts[j] = wts[j - 1u]; wts[j - 1u] = w;
        j -= 1u;
      }
    }
    for (var k = 0u; k < ${K}u; k++) {
      ${R}[${l.sel}u + t * ${K}u + k] = sl[k];
      ${R}[${l.selW}u + t * ${K}u + k] = bitcast<u32>(wts[k]);
      if (sl[k] != 0xffffffffu) { atomicAdd(&cnt[sl[k]], 1u); }
    }
  }
  workgroupBarrier();
  if (lid == 0u) {
    let tr = ${tr};
    var at = 0u;
    var nt = 0u;
    for (var s = 0u; s < ${NL}u; s++) {
      let c = atomicLoad(&cnt[s]);
      ${R}[${l.counts}u + s] = c;
      ${R}[${l.offsets}u + s] = at;
      offs[s] = at;
      for (var r0 = 0u; r0 < c; r0 += tr) {
        ${R}[${l.tiles}u + 2u * nt] = s;
        ${R}[${l.tiles}u + 2u * nt + 1u] = r0;
        nt += 1u;
      }
      at += c;
    }
    ${R}[${l.numTiles}u] = nt;
  }
  workgroupBarrier();
  for (var t = lid; t < T; t += 256u) {
    for (var k = 0u; k < ${K}u; k++) {
      let s = ${R}[${l.sel}u + t * ${K}u + k];
      var p = 0xffffffffu;
      if (s != 0xffffffffu) {
        p = offs[s] + atomicAdd(&cur[s], 1u);
        ${R}[${l.tokens}u + p] = t;
        ${R}[${l.weights}u + p] = ${R}[${l.selW}u + t * ${K}u + k];
      }
      ${R}[${l.pairs}u + t * ${K}u + k] = p;
    }
  }
}`;
}

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

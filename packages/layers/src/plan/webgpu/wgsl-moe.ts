/**
 * WGSL for the moe op's routed experts on the WebGPU executor (routing runs
 * on the host: `moe-experts.ts`). The step's routing buffer holds, per local
 * expert slot, `[offset, count]`, then every chosen (token, weight) pair
 * grouped by expert. Per expert: its tokens' rows gathered into a scratch
 * the expert's gate|up reads its tokens' rows in place and its down adds the
 * weighted rows back into each token's row (plan linear kernels with
 * `MatmulSpec.route`); experts run one after another in ascending id, so each
 * row's sum is formed in the order the tfjs path uses.
 */
import type { ActView } from '../ops.js';
import type { Binder } from './wgsl-common.js';

const MAIN = '@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32)';

/** u32 offsets of the routing buffer: slot table `[experts, 2]`, tokens `[entries]`, weights (f32 bits) `[entries]`. */
export function routeLayout(experts: number, maxEntries: number): { tokens: number; weights: number; words: number } {
  return { tokens: 2 * experts, weights: 2 * experts + maxEntries, words: 2 * experts + 2 * maxEntries };
}

/** Declares `count()`, `token(j)`, `weight(j)` of the expert in `slot` (for the plan's linear kernels: MatmulSpec.route). */
export function routeDecl(b: Binder, route: GPUBuffer, slot: number, experts: number, maxEntries: number): string {
  const R = b.buffer(route, 'route', 'u32', 'read');
  const l = routeLayout(experts, maxEntries);
  return `fn count() -> u32 { return ${R}[${2 * slot + 1}u]; }
fn token(j : u32) -> u32 { return ${R}[${l.tokens}u + ${R}[${2 * slot}u] + j]; }
fn weight(j : u32) -> f32 { return bitcast<f32>(${R}[${l.weights}u + ${R}[${2 * slot}u] + j]); }`;
}

/** out ← 0 on the step's rows (the moe op overwrites its output). */
export function zeroWgsl(b: Binder, out: ActView): string {
  const O = b.act(out.act);
  const si = b.step();
  return `${b.decls.join('\n')}
${si}
${MAIN} {
  let idx = (wid.y * 65535u + wid.x) * 256u + lid;
  let row = idx / ${out.width}u;
  if (row >= si[0]) { return; }
  ${O}[row * ${out.act.width}u + ${out.col}u + idx % ${out.width}u] = 0.0;
}`;
}

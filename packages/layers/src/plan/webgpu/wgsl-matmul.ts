/**
 * WGSL for the linear op, `out (+)= x · Wᵀ (+ bias)` on a weight `[n, k]` in
 * any of the plan's formats (fp32, bf16 pairs, Q8_0 / Q4_0 blocks dequantized
 * in registers: weight-only, the activations stay fp32):
 * - `gemvWgsl`, up to 16 rows (decode): a workgroup owns 4 weight rows, 64
 *   threads stream each row with 16-byte loads against the M activation rows
 *   (M baked in), partial sums meet in workgroup memory. Each weight byte is
 *   read once per step whatever M is.
 * - `gemmWgsl`, more rows (prefill, big batches): 64 × 64 output tiles, K in
 *   steps of 16 through workgroup memory, 8 × 4 outputs per thread.
 * `gateUp` fuses the gated MLP's activation: the weight's first n/2 rows are
 * the gate, the rest the up projection, and `act(gate) · up` is stored.
 */
import { WeftError } from '@weft/core';
import type { ActView } from '../ops.js';
import type { GpuMatrix } from './gpu-weights.js';
import { f32Lit, rowsExpr, WEIGHT_FNS, type Binder } from './wgsl-common.js';
import type { RouteDecl } from './wgsl-moe.js';

export interface MatmulSpec {
  w: GpuMatrix;
  x: ActView;
  out: ActView;
  bias: GPUBuffer | null;
  accumulate: boolean;
  /** Fused gated activation: out width = n / 2. */
  gateUp: 'silu' | 'gelu_tanh' | null;
  /**
   * RMSNorm of the input fused into the GEMV (the GEMM reads `x`, which a separate norm kernel wrote):
   * the GEMV reads `norm.x` and scales by `(weight + offset) · rsqrt(mean(x²) + eps)`.
   */
  norm?: { x: ActView; weight: GPUBuffer; eps: number; offset: number } | null;
  /**
   * A tile of an expert's rows of a routed step (the moe op; routeDecl declares `SLOT`, `count()`, `entry()`,
   * `token(j)` and takes workgroup row `wid.y`'s tile): `w` holds every expert's rows, this one's from `row0`
   * (an expression of SLOT), `n` of them; row j reads x's row `token(j)` or `entry() + j` and is stored into
   * out's row `entry() + j` (one row per pair). `grouped`: one workgroup row per tile (gemvWgsl).
   */
  route?: { bind(b: Binder): RouteDecl; x: 'token' | 'entry'; row0: string; n: number; grouped: boolean } | null;
}

/** Rows up to which the GEMV runs. */
export const GEMV_MAX_ROWS = 16;
/** Weight rows per GEMV workgroup. */
export const GEMV_ROWS = 4;
export const GEMM_TILE = 64;

export const ACT_FNS = /* wgsl */ `
fn silu(g : f32) -> f32 { return g / (1.0 + exp(-g)); }
fn gelu_tanh(g : f32) -> f32 { return 0.5 * g * (1.0 + tanh(clamp(0.7978845608 * (g + 0.044715 * g * g * g), -15.0, 15.0))); }`;

/** The x loader `xl(m, k4)`: elements `4·k4 … 4·k4 + 3` of row m of the view, zero past k. */
function xLoader(b: Binder, x: ActView, out: ActView, k: number, maxK4: number, routeX: 'token' | 'entry' | null): string {
  const m = routeX === 'token' ? 'token(m)' : routeX === 'entry' ? '(entry() + m)' : 'm';
  const vec = x.act !== out.act && x.col % 4 === 0 && x.act.width % 4 === 0 && k % 4 === 0;
  const K4 = Math.ceil(k / 4);
  if (vec) {
    const X = b.buffer(b.bufferOf(x.act), 'x4', 'vec4<f32>', 'read');
    const at = `${X}[${m} * ${x.act.width / 4}u + ${x.col / 4}u + k4]`;
    return `fn xl(m : u32, k4 : u32) -> vec4<f32> { ${maxK4 > K4 ? `if (k4 >= ${K4}u) { return vec4<f32>(0.0); } ` : ''}return ${at}; }`;
  }
  const X = b.act(x.act);
  return `fn xl(m : u32, k4 : u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  let b = ${m} * ${x.act.width}u + ${x.col}u + 4u * k4;
  for (var e = 0u; e < 4u; e++) { if (4u * k4 + e < ${k}u) { v[e] = ${X}[b + e]; } }
  return v;
}`;
}

export function scaleFn(b: Binder, w: GpuMatrix): string {
  if (!w.scales) return '';
  const S = b.buffer(w.scales, 'wsc', 'u32', 'read');
  return `fn scale(i : u32) -> f32 { return unpack2x16float(${S}[i >> 1u])[i & 1u]; }`;
}

/** The shape checked; K, the gate/up split (`half`), output columns NO and the x loader declared. */
export function prologue(b: Binder, s: MatmulSpec, x: ActView = s.x): { K: number; half: number; NO: number; xl: string; route: RouteDecl | null; row: (r: string) => string } {
  const { w } = s;
  const n = s.route ? s.route.n : w.n;
  const half = n / 2;
  const NO = s.gateUp ? half : n;
  if (s.x.width !== w.k || s.out.width !== NO) {
    throw new WeftError(`webgpu plan: linear ${w.name} [${w.n}, ${w.k}] reads ${s.x.act.name} columns ${s.x.width}, writes ${s.out.act.name} columns ${s.out.width}`);
  }
  const route = s.route ? s.route.bind(b) : null;
  // A weight row (an expression): shifted to this expert's rows in a stacked matrix.
  const row = (r: string) => (s.route ? `(${s.route.row0} + ${r})` : r);
  return { K: w.k, half, NO, xl: xLoader(b, x, s.out, w.k, Math.ceil(w.kp / 4), s.route?.x ?? null), route, row };
}

/** The fused norm's weight loader `gv(k4)` (vec4 where k allows, else element by element with a bound), or ''. */
export function normLoader(b: Binder, s: MatmulSpec, K: number, kp: number): string {
  const norm = s.norm;
  if (!norm) return '';
  const gVec = K % 4 === 0;
  const G = b.buffer(norm.weight, gVec ? 'gn4' : 'gn', gVec ? 'vec4<f32>' : 'f32', 'read');
  if (gVec) return `fn gv(k4 : u32) -> vec4<f32> { ${kp > K ? `if (k4 >= ${K / 4}u) { return vec4<f32>(0.0); } ` : ''}return ${G}[k4]${norm.offset ? ` + vec4<f32>(${f32Lit(norm.offset)})` : ''}; }`;
  return `fn gv(k4 : u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) { if (4u * k4 + e < ${K}u) { v[e] = ${G}[4u * k4 + e]${norm.offset ? ` + ${f32Lit(norm.offset)}` : ''}; } }
  return v;
}`;
}

/** The store of output `val` at row `m`, column `col`: plain, accumulated, or (an expert's) at its pair's row. */
export function store(s: MatmulSpec, Y: string, m: string, col: string, val: string): string {
  const at = (row: string) => `${row} * ${s.out.act.width}u + ${s.out.col}u + ${col}`;
  if (s.route) return `if (${m} < count()) { ${Y}[${at(`(entry() + ${m})`)}] = ${val}; }`;
  return `${Y}[${at(m)}] ${s.accumulate ? '+=' : '='} ${val};`;
}

/** The GEMV for exactly `m` rows (bindings collected in `b`). */
export function gemvWgsl(b: Binder, s: MatmulSpec, m: number): string {
  const { w } = s;
  const { K, half, NO, xl, route, row } = prologue(b, s, s.norm?.x ?? s.x);
  const steps = w.kp / { fp32: 4, bf16: 8, q8_0: 16, q4_0: 32 }[w.format];
  const Y = b.act(s.out.act);
  const W = b.buffer(w.data, 'W', w.format === 'fp32' ? 'vec4<f32>' : 'vec4<u32>', 'read');
  const sc = scaleFn(b, w);
  const B = s.bias ? b.buffer(s.bias, 'bias', 'f32', 'read') : null;
  const ms = Array.from({ length: m }, (_, i) => i);
  const ws = s.gateUp ? ['G', 'U'] : ['W'];
  const rowOf = (wn: string) => row(wn === 'U' ? `(n + ${half}u)` : 'n');
  // One weight step (kk) of row `r`: declares the weight vectors w<wn><j> (and a block scale s<wn>).
  const fetch = (wn: string): string => {
    const r = rowOf(wn);
    switch (w.format) {
      case 'fp32':
        return `let w${wn}0 = ${W}[${r} * ${w.kp / 4}u + kk];`;
      case 'bf16':
        return `let u${wn} = ${W}[${r} * ${w.kp / 8}u + kk]; let w${wn}0 = vec4<f32>(bf2(u${wn}.x), bf2(u${wn}.y)); let w${wn}1 = vec4<f32>(bf2(u${wn}.z), bf2(u${wn}.w));`;
      case 'q8_0':
        return `let u${wn} = ${W}[${r} * ${K / 16}u + kk]; let s${wn} = scale(${r} * ${K / 32}u + kk / 2u); ${['x', 'y', 'z', 'w'].map((c, e) => `let w${wn}${e} = i8x4(u${wn}.${c});`).join(' ')}`;
      case 'q4_0':
        return `let u${wn} = ${W}[${r} * ${K / 32}u + kk]; let s${wn} = scale(${r} * ${K / 32}u + kk); ${['x', 'y', 'z', 'w'].map((c, e) => `let w${wn}${e} = nib4(u${wn}.${c}); let w${wn}${e + 4} = nib4(u${wn}.${c} >> 4u);`).join(' ')}`;
    }
  };
  // The x vectors (k4 indices) one weight step covers.
  const k4s = { fp32: ['kk'], bf16: ['2u * kk', '2u * kk + 1u'], q8_0: [0, 1, 2, 3].map((e) => `4u * kk + ${e}u`), q4_0: [0, 1, 2, 3, 4, 5, 6, 7].map((e) => `8u * kk + ${e}u`) }[w.format];
  const scaled = w.format === 'q8_0' || w.format === 'q4_0';
  const norm = s.norm;
  const gv = normLoader(b, s, K, w.kp);
  const inner = `${ws.map(fetch).join('\n      ')}
      ${norm ? k4s.map((k, j) => `let g${j} = gv(${k});`).join(' ') : ''}
      ${ms
        .map(
          (i) => `{
        ${k4s.map((k, j) => `let x${j} = xl(${i}u, ${k});`).join(' ')}
        ${ws.map((wn) => `a${wn}${i} += ${scaled ? `s${wn} * ` : ''}(${k4s.map((_, j) => `dot(w${wn}${j}, x${j}${norm ? ` * g${j}` : ''})`).join(' + ')});`).join(' ')}
        ${norm ? `aS${i} += ${k4s.map((_, j) => `dot(x${j}, x${j})`).join(' + ')};` : ''}
      }`,
        )
        .join('\n      ')}`;
  const tags = norm ? [...ws, 'S'] : ws;
  const T = 256 / GEMV_ROWS;
  const P = m * GEMV_ROWS;
  const reduce = (wn: string) => `
  ${ms.map((i) => `part[${i * 256}u + lid] = a${wn}${i};`).join(' ')}
  workgroupBarrier();
  for (var i = lid; i < ${P * 8}u; i += 256u) {
    let b = (i / 8u) * ${T}u + (i % 8u) * 8u;
    part2[i] = part[b] + part[b + 1u] + part[b + 2u] + part[b + 3u] + part[b + 4u] + part[b + 5u] + part[b + 6u] + part[b + 7u];
  }
  workgroupBarrier();
  for (var i = lid; i < ${P}u; i += 256u) {
    let b = i * 8u;
    fin${wn}[i] = part2[b] + part2[b + 1u] + part2[b + 2u] + part2[b + 3u] + part2[b + 4u] + part2[b + 5u] + part2[b + 6u] + part2[b + 7u];
  }
  workgroupBarrier();`;
  const inv = norm ? ` * inverseSqrt(finS[i] / ${f32Lit(K)} + ${f32Lit(norm.eps)})` : '';
  const val = s.gateUp
    ? `${s.gateUp}(finG[i]${inv}${B ? ` + ${B}[nn]` : ''}) * (finU[i]${inv}${B ? ` + ${B}[nn + ${half}u]` : ''})`
    : `finW[i]${inv}${B ? ` + ${B}[nn]` : ''}`;
  return `${WEIGHT_FNS}
${ACT_FNS}
${b.decls.join('\n')}
${route?.decl ?? ''}
${sc}
${xl}
${gv}
var<workgroup> part : array<f32, ${P * T}>;
var<workgroup> part2 : array<f32, ${P * 8}>;
${tags.map((wn) => `var<workgroup> fin${wn} : array<f32, ${P}>;`).join('\n')}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  ${route?.init ?? ''}
  let wg = ${s.route?.grouped ? 'wid.x' : 'wid.y * 65535u + wid.x'};
  let n = wg * ${GEMV_ROWS}u + lid / ${T}u;
  let lane = lid % ${T}u;
  ${tags.map((wn) => ms.map((i) => `var a${wn}${i} = 0.0;`).join(' ')).join(' ')}
  if (n < ${NO}u) {
    for (var kk = lane; kk < ${steps}u; kk += ${T}u) {
      ${inner}
    }
  }
  ${tags.map(reduce).join('\n')}
  for (var i = lid; i < ${P}u; i += 256u) {
    let m = i / ${GEMV_ROWS}u;
    let nn = wg * ${GEMV_ROWS}u + i % ${GEMV_ROWS}u;
    if (nn < ${NO}u) { ${store(s, Y, 'm', 'nn', val)} }
  }
}`;
}

/** The tiled GEMM (rows from `si`); `BK`: K per step through workgroup memory (16 or 32). */
export function gemmWgsl(b: Binder, s: MatmulSpec, BK = 16): string {
  if (BK !== 16 && BK !== 32) throw new Error(`gemmWgsl: BK ${BK}`);
  const hs = Array.from({ length: BK / 8 }, (_, h) => h);
  const Q = BK / 4;
  const { w } = s;
  const { K, half, NO, xl, route, row } = prologue(b, s);
  const Y = b.act(s.out.act);
  const wType = { fp32: 'vec4<f32>', bf16: 'vec2<u32>', q8_0: 'u32', q4_0: 'u32' }[w.format];
  const W = b.buffer(w.data, 'W', wType, 'read');
  const sc = scaleFn(b, w);
  const B = s.bias ? b.buffer(s.bias, 'bias', 'f32', 'read') : null;
  // An expert's GEMM takes its row count from the routing, not the step.
  const si = s.route ? '' : b.step();
  const ws = s.gateUp ? ['G', 'U'] : ['W'];
  // Four consecutive k of weight row `r` from kq (a multiple of 4).
  const load = (r: string) => {
    switch (w.format) {
      case 'fp32':
        return `${W}[(${r} * ${w.kp}u + kq) / 4u]`;
      case 'bf16':
        return `vec4<f32>(bf2(${W}[(${r} * ${w.kp}u + kq) / 4u].x), bf2(${W}[(${r} * ${w.kp}u + kq) / 4u].y))`;
      case 'q8_0':
        return `i8x4(${W}[(${r} * ${K}u + kq) / 4u]) * scale(${r} * ${K / 32}u + kq / 32u)`;
      case 'q4_0':
        return `nib4(${W}[(${r} * ${K / 32}u + kq / 32u) * 4u + (kq % 16u) / 4u] >> select(0u, 4u, kq % 32u >= 16u)) * scale(${r} * ${K / 32}u + kq / 32u)`;
    }
  };
  // Registers pa / pb ← the tile at K step `k0` (an expression): two vec4 of x and of each weight row set per thread.
  const fetchTile = (k0: string) =>
    hs
      .map(
        (h) => `{
      let idx = lid + ${h * 128}u;
      let lr = idx / ${Q}u;
      let kq = ${k0} + (idx % ${Q}u) * 4u;
      pa${h} = vec4<f32>(0.0);
      if (m0 + lr < M && kq < ${w.kp}u) { pa${h} = xl(m0 + lr, kq / 4u); }
      ${ws.map((wn) => `pb${wn}${h} = vec4<f32>(0.0); if (n0 + lr < ${NO}u && kq < ${w.kp}u) { pb${wn}${h} = ${load(row(wn === 'U' ? `(n0 + lr + ${half}u)` : '(n0 + lr)'))}; }`).join('\n      ')}
    }`,
      )
      .join('\n  ');
  const val = (i: string, c: string) =>
    s.gateUp
      ? `${s.gateUp}(cG[${i}][${c}]${B ? ` + ${B}[col]` : ''}) * (cU[${i}][${c}]${B ? ` + ${B}[col + ${half}u]` : ''})`
      : `cW[${i}][${c}]${B ? ` + ${B}[col]` : ''}`;
  return `${WEIGHT_FNS}
${ACT_FNS}
${b.decls.join('\n')}
${si}
${route?.decl ?? ''}
${sc}
${xl}
var<workgroup> As : array<vec4<f32>, ${BK * 16}>;
${ws.map((wn) => `var<workgroup> Bs${wn} : array<vec4<f32>, ${BK * 16}>;`).join('\n')}
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  ${route?.init ?? ''}
  let M = ${route ? route.count : rowsExpr(s.x.act)};
  // Routed rows: workgroup row = one tile of an expert's rows (at most 64, routeDecl).
  let m0 = ${route ? '0u' : 'wid.y * 64u'};
  let n0 = wid.x * 64u;
  if (m0 >= M) { return; }
  let tx = lid % 16u;
  let ty = lid / 16u;
  ${ws.map((wn) => `var c${wn} : array<vec4<f32>, 8>;`).join(' ')}
  ${hs.map((h) => `var pa${h} = vec4<f32>(0.0); ${ws.map((wn) => `var pb${wn}${h} = vec4<f32>(0.0);`).join(' ')}`).join('\n  ')}
  ${fetchTile('0u')}
  for (var k0 = 0u; k0 < ${w.kp}u; k0 += ${BK}u) {
    ${hs
      .map(
        (h) => `{
      let idx = lid + ${h * 128}u;
      let lr = idx / ${Q}u;
      let lk = (idx % ${Q}u) * 4u;
      for (var c = 0u; c < 4u; c++) { As[(lk + c) * 16u + lr / 4u][lr % 4u] = pa${h}[c]; ${ws.map((wn) => `Bs${wn}[(lk + c) * 16u + lr / 4u][lr % 4u] = pb${wn}${h}[c];`).join(' ')} }
    }`,
      )
      .join('\n    ')}
    workgroupBarrier();
    // The next K step's global loads are in flight while this one multiplies.
    if (k0 + ${BK}u < ${w.kp}u) { ${fetchTile(`k0 + ${BK}u`)} }
    for (var kk = 0u; kk < ${BK}u; kk++) {
      let a0 = As[kk * 16u + ty * 2u];
      let a1 = As[kk * 16u + ty * 2u + 1u];
      ${ws.map((wn) => `{ let b = Bs${wn}[kk * 16u + tx]; c${wn}[0] += a0.x * b; c${wn}[1] += a0.y * b; c${wn}[2] += a0.z * b; c${wn}[3] += a0.w * b; c${wn}[4] += a1.x * b; c${wn}[5] += a1.y * b; c${wn}[6] += a1.z * b; c${wn}[7] += a1.w * b; }`).join('\n      ')}
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let row = m0 + ty * 8u + i;
    if (row < M) {
      for (var c = 0u; c < 4u; c++) {
        let col = n0 + tx * 4u + c;
        if (col < ${NO}u) { ${store(s, Y, 'row', 'col', val('i', 'c'))} }
      }
    }
  }
}`;
}

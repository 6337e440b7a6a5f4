/**
 * The register-tiled GEMV for decode-sized steps (1 … GEMV_MAX_ROWS activation rows, every format):
 * a workgroup of 256 threads is `G = 256 / L` groups of `L` lanes; a group owns `R` weight rows (R / 2
 * outputs with the fused gate|up), its lanes stride over K in 16-byte weight vectors. Each thread loads its
 * R rows' vectors once (one 16-byte load each, several in flight), decodes them into registers (block
 * scales folded in), and multiplies every activation row against all of them: each activation vector read
 * from cache serves R weight rows, each weight byte is read from memory once per step whatever the row
 * count. Partial sums meet in workgroup memory in chunks (two-level sums, three barriers a chunk).
 * The RMSNorm of the input rides along as in `gemvWgsl` (Σx² over the GEMV's own x reads).
 */
import { WeftError } from '@weft/core';
import { f32Lit, rowsExpr, WEIGHT_FNS, type Binder } from './wgsl-common.js';
import { ACT_FNS, normLoader, prologue, scaleFn, store, type MatmulSpec } from './wgsl-matmul.js';

/** Lanes along K per output group, and weight rows per thread. */
export interface GemvShape {
  L: number;
  R: number;
  /** Reduce with subgroupAdd (needs the 'subgroups' feature and L equal to the subgroup size). */
  sg?: boolean;
  /** K passes whose weight loads a thread issues before decoding any of them (bytes in flight: U · R · 16; default 1). */
  U?: number;
}

/**
 * The shapes before the H200 sweep of 2026-12-03 23:20 (64 lanes along K; up to 4 rows fp32 / bf16 2 weight
 * rows a thread, 4 with gate|up, Q8_0 / Q4_0 4, 8 with gate|up; from 5 rows 4 weight rows a thread, 8 for
 * fp32 / bf16 where that leaves ≥ 80 workgroups). fp32 (not swept) keeps them; bench gpu-step's variant
 * `gemv-before` runs them for the before/after.
 */
export function gemvShapeBefore(m: number, gateUp: boolean, w: GemvWeight): GemvShape {
  const quant = w.format === 'q8_0' || w.format === 'q4_0';
  if (m <= 4) return { L: 64, R: (quant ? 4 : 2) * (gateUp ? 2 : 1) };
  if (quant) return { L: 64, R: 4 };
  const R8 = (256 / 64) * (gateUp ? 4 : 8);
  return { L: 64, R: w.cols / R8 >= 80 ? 8 : 4 };
}

/**
 * The default shape per weight format, activation row count (1–4 rows, or a chunk of 5–8) and matrix, from the
 * H200 call of 2026-12-03 23:20 (bench gpu-kernels' sweep of TinyLlama's linears at a kept-up clock, then whole
 * decode steps: per-class µs of 22 layers; docs/benchmarks/gpu.md "GEMV shapes"). The sweep runs a linear's one
 * matrix 50 times, L2-resident below ~50 MB, so only whole steps decided. Whole-step gains over gemvShapeBefore:
 * - 1 row: down (K 5632) on 128 lanes (bf16 223 → 203 µs a step, Q4_0 216 → 203) or, Q8_0, 2 rows a thread
 *   (269 → 197); Q4_0 qkv 8 rows a thread (177 → 151).
 * - chunks: Q4_0 / Q8_0 8 weight rows a thread (each x read and each decoded weight serve 8 × 8 products):
 *   Q4_0 qkv 865 → 616, gate|up 3,021 → 1,704, down 1,212 → 734; Q8_0 gate|up 1,960 → 1,409, down 701 → 590.
 *   bf16: 16 lanes × 4 rows for gate|up and the LM head (1,527 → 1,153; 197 → 111), 4 rows (not 8) for qkv
 *   (531 → 426). A quantized LM head (16 × 8 in chunks; Q4_0 8 rows a thread at 1 row) is the sweep's pick alone:
 *   the bench's checkpoints keep it bf16.
 * Tried and not taken: subgroupAdd sums (slower whole steps although faster alone), loads of 2–4 K passes in
 * flight (`U`: faster alone on L2-resident matrices, equal or slower in the step).
 */
export function gemvShape(m: number, gateUp: boolean, w: GemvWeight): GemvShape {
  const { format, cols, k } = w;
  if (format === 'fp32') return gemvShapeBefore(m, gateUp, w);
  const quant = format === 'q8_0' || format === 'q4_0';
  if (m <= 4) {
    if (gateUp) return { L: 64, R: quant ? 8 : 4 };
    if (k > 4096) return format === 'q8_0' ? { L: 64, R: 2 } : { L: 128, R: quant ? 4 : 2 };
    return { L: 64, R: !quant ? 2 : format === 'q4_0' && cols / 32 >= 80 ? 8 : 4 };
  }
  if (!quant) return cols >= 4096 ? { L: 16, R: 4 } : { L: 64, R: 4 };
  if (cols >= 16384) return { L: 16, R: 8 };
  if (k > 4096) return { L: 64, R: 8 };
  return gateUp || (format === 'q4_0' && cols / 32 >= 80) ? { L: 32, R: 8 } : { L: 64, R: 4 };
}

/** What a GEMV's shape is chosen by: the weight's format, output columns (of one half for gate|up) and K. */
export interface GemvWeight {
  format: string;
  cols: number;
  k: number;
}

/** Outputs per workgroup. */
export function gemvOutputs(t: GemvShape, gateUp: boolean): number {
  return (256 / t.L) * (gateUp ? t.R / 2 : t.R);
}

interface Unit {
  /** x vector indices (vec4 of k) this unit covers. */
  k4: string[];
  /** The decoded weight vec4s (one per k4) from the loaded vector `u` and its scale `s`. */
  w: (u: string, s: string) => string[];
}

const UNITS: Record<string, Unit[]> = {
  fp32: [{ k4: ['kk'], w: (u) => [u] }],
  bf16: [
    { k4: ['2u * kk'], w: (u) => [`vec4<f32>(bf2(${u}.x), bf2(${u}.y))`] },
    { k4: ['2u * kk + 1u'], w: (u) => [`vec4<f32>(bf2(${u}.z), bf2(${u}.w))`] },
  ],
  q8_0: ['x', 'y', 'z', 'w'].map((c, e) => ({ k4: [`4u * kk + ${e}u`], w: (u: string, s: string) => [`i8x4(${u}.${c}) * ${s}`] })),
  q4_0: ['x', 'y', 'z', 'w'].map((c, e) => ({ k4: [`8u * kk + ${e}u`, `8u * kk + ${e + 4}u`], w: (u: string, s: string) => [`nib4(${u}.${c}) * ${s}`, `nib4(${u}.${c} >> 4u) * ${s}`] })),
};

/**
 * Rows one chunk of the chunked GEMV carries by default (`KernelTuning.gemvChunk`; one chunk per workgroup
 * row): 8, from the H200 run of 2026-12-03 20:24 (bench gpu-step, whole decode steps): bf16 at 16 rows 3.34 ms
 * on the GPU against 3.87 with one 16-row kernel, at 64 rows 10.55 against 11.21 (chunks of 16); Q4_0 6.29
 * both at 16 rows, 16.84 against 17.37 at 64; chunks of 4 were slower (4.00, 13.89). Greedy ids unchanged.
 */
export const CHUNK = 8;

/**
 * `m` activation rows (baked in), or with `chunked` the step's rows in chunks of m: workgroup row
 * `wid.y` takes rows `m · wid.y …`; the chunks of one weight tile run side by side, so the tile is
 * fetched from memory about once and served to the others from L2.
 */
export function gemvTiledWgsl(b: Binder, s: MatmulSpec, m: number, t: GemvShape, chunked = false): string {
  if (s.route && chunked) throw new Error('gemvTiledWgsl: routed rows come in tiles, not chunks');
  const { w } = s;
  const { L, R } = t;
  const U = t.U ?? 1;
  const ws = s.gateUp ? ['G', 'U'] : ['W'];
  const OPT = R / ws.length;
  if (!Number.isInteger(OPT) || OPT < 1 || 256 % L || L < 8 || !Number.isInteger(U) || U < 1) throw new WeftError(`webgpu plan: GEMV shape L ${L}, R ${R}, U ${U} (gate|up: ${!!s.gateUp})`);
  const G = 256 / L;
  // Routed (moe expert) rows: workgroup row = one tile of an expert's rows (routeDecl), its weight rows from row().
  const { K, half, NO, xl, route, row } = prologue(b, s, s.norm?.x ?? s.x);
  const per = { fp32: 4, bf16: 8, q8_0: 16, q4_0: 32 }[w.format];
  const steps = w.kp / per;
  const stride = w.format === 'fp32' ? w.kp / 4 : w.format === 'bf16' ? w.kp / 8 : K / per;
  const iters = Math.ceil(steps / L);
  const passes = Math.ceil(iters / U);
  // A pass's kk past the weight row: its loads are clamped into the row, its sums skipped.
  const us = Array.from({ length: Math.min(U, iters) }, (_, p) => p);
  const partial = passes * us.length * L !== steps;
  const Y = b.act(s.out.act);
  const W = b.buffer(w.data, 'W', w.format === 'fp32' ? 'vec4<f32>' : 'vec4<u32>', 'read');
  const sc = scaleFn(b, w);
  const B = s.bias ? b.buffer(s.bias, 'bias', 'f32', 'read') : null;
  const norm = s.norm ?? null;
  const gv = normLoader(b, s, K, w.kp);
  const os = Array.from({ length: OPT }, (_, o) => o);
  const ms = Array.from({ length: m }, (_, i) => i);
  // Weight rows of this thread: (wn, o) → its row expression.
  const rows = ws.flatMap((wn) => os.map((o) => ({ wn, o, id: `${wn}${o}`, row: row(`${wn === 'U' ? `${half}u + ` : ''}min(n0 + ${o}u, ${NO - 1}u)`) })));
  const scaled = w.format === 'q8_0' || w.format === 'q4_0';
  // The loads of pass p (at kk<p>, clamped where a pass may run past the row), then its sums (on `kk`).
  const loads = (p: number) =>
    rows
      .map(({ id, row }) => {
        const k = partial ? `min(kk${p}, ${steps - 1}u)` : `kk${p}`;
        const at = `(${row}) * ${stride}u + ${k}`;
        const sAt = w.format === 'q8_0' ? `(${row}) * ${K / 32}u + ${k} / 2u` : `(${row}) * ${K / 32}u + ${k}`;
        return `let u${id}p${p} = ${W}[${at}];${scaled ? ` let s${id}p${p} = scale(${sAt});` : ''}`;
      })
      .join('\n      ');
  const units = (p: number) => UNITS[w.format]!.map((u) => {
    const dec = rows.map(({ id }) => u.w(`u${id}p${p}`, `s${id}p${p}`).map((e, j) => `let w${id}_${j} = ${e};`).join(' ')).join('\n        ');
    const gs = norm ? u.k4.map((k, j) => `let g${j} = gv(${k});`).join(' ') : '';
    const perRow = ms
      .map((i) => {
        const xs = u.k4.map((k, j) => `let x${j} = xl(r0 + ${i}u, ${k});`).join(' ');
        const xg = norm ? u.k4.map((_, j) => `let y${j} = x${j} * g${j};`).join(' ') : '';
        const xv = (j: number) => (norm ? `y${j}` : `x${j}`);
        const acc = rows.map(({ id }) => `a${id}_${i} += ${u.k4.map((_, j) => `dot(w${id}_${j}, ${xv(j)})`).join(' + ')};`).join(' ');
        const ss = norm ? `aS_${i} += ${u.k4.map((_, j) => `dot(x${j}, x${j})`).join(' + ')};` : '';
        return `{ ${xs} ${xg} ${acc} ${ss} }`;
      })
      .join('\n        ');
    return `{
        ${dec}
        ${gs}
        ${perRow}
      }`;
  });
  // Values each thread hands to the reduction: every (row, activation row) sum, then Σx² per activation row.
  const vals = [...rows.flatMap(({ id }) => ms.map((i) => `a${id}_${i}`)), ...(norm ? ms.map((i) => `aS_${i}`) : [])];
  const V = vals.length;
  const CH = Math.min(16, V);
  const CHs = Math.min(8, L);
  const chunks: string[] = [];
  if (t.sg) {
    // One subgroup per group of L lanes: each sum is one subgroupAdd, its first lane keeps it.
    chunks.push(`${vals.map((v, j) => `let t${j} = subgroupAdd(${v}); if (lane == 0u) { fin[${j * G}u + grp] = t${j}; }`).join('\n  ')}
  workgroupBarrier();`);
  }
  for (let c0 = 0; c0 < (t.sg ? 0 : V); c0 += CH) {
    const nv = Math.min(CH, V - c0);
    chunks.push(`
  ${vals
    .slice(c0, c0 + nv)
    .map((v, j) => `part[${j * 256}u + lid] = ${v};`)
    .join(' ')}
  workgroupBarrier();
  for (var i = lid; i < ${(nv * 256) / CHs}u; i += 256u) {
    let b = i * ${CHs}u;
    part2[i] = ${Array.from({ length: CHs }, (_, j) => `part[b + ${j}u]`).join(' + ')};
  }
  workgroupBarrier();
  for (var i = lid; i < ${nv * G}u; i += 256u) {
    let b = i * ${L / CHs}u;
    fin[${c0 * G}u + i] = ${Array.from({ length: L / CHs }, (_, j) => `part2[b + ${j}u]`).join(' + ')};
  }
  workgroupBarrier();`);
  }
  // fin[(v · G) + grp]: v = (wn · OPT + o) · m + i for the sums, ws · OPT · m + i for Σx².
  const fin = (wi: number) => `fin[(((${wi * OPT}u + o) * ${m}u + i) * ${G}u) + grp]`;
  const inv = norm ? ` * inverseSqrt(fin[((${ws.length * OPT * m}u + i) * ${G}u) + grp] / ${f32Lit(K)} + ${f32Lit(norm.eps)})` : '';
  const val = s.gateUp
    ? `${s.gateUp}(${fin(0)}${inv}${B ? ` + ${B}[nn]` : ''}) * (${fin(1)}${inv}${B ? ` + ${B}[nn + ${half}u]` : ''})`
    : `${fin(0)}${inv}${B ? ` + ${B}[nn]` : ''}`;
  const body = `${us.map((p) => `let kk${p} = lane + (it + ${p}u) * ${L}u;`).join(' ')}
    ${us.map(loads).join('\n    ')}
    ${us.map((p) => `${partial ? `if (kk${p} < ${steps}u) ` : ''}{
      let kk = kk${p};
      ${units(p).join('\n      ')}
    }`).join('\n    ')}`;
  const si = chunked ? b.step() : '';
  return `${t.sg ? 'enable subgroups;\n' : ''}${WEIGHT_FNS}
${ACT_FNS}
${b.decls.join('\n')}
${si}
${route?.decl ?? ''}
${sc}
${xl}
${gv}
${t.sg ? '' : `var<workgroup> part : array<f32, ${CH * 256}>;
var<workgroup> part2 : array<f32, ${(CH * 256) / CHs}>;`}
var<workgroup> fin : array<f32, ${V * G}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  ${route?.init ?? ''}
  let wg = ${chunked || route ? 'wid.x' : 'wid.y * 65535u + wid.x'};
  let r0 = ${chunked ? `wid.y * ${m}u` : '0u'};
  let grp = lid / ${L}u;
  let lane = lid % ${L}u;
  let n0 = wg * ${G * OPT}u + grp * ${OPT}u;
  ${vals.map((v) => `var ${v} = 0.0;`).join(' ')}
  for (var it = 0u; it < ${passes * U}u; it += ${U}u) {
    ${body}
  }
  ${chunks.join('\n')}
  for (var idx = lid; idx < ${G * OPT * m}u; idx += 256u) {
    let i = idx / ${G * OPT}u;
    let rem = idx % ${G * OPT}u;
    let grp = rem / ${OPT}u;
    let o = rem % ${OPT}u;
    let nn = wg * ${G * OPT}u + rem;
    if (nn < ${NO}u${chunked ? ` && r0 + i < ${rowsExpr(s.x.act)}` : ''}) { ${store(s, Y, '(r0 + i)', 'nn', val)} }
  }
}`;
}

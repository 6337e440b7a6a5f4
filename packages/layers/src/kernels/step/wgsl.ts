/**
 * WGSL for weft's own decode step (see llama-step.ts). Every shader is
 * generated with the model's dimensions baked in as constants; what changes
 * from step to step (rows, positions, block tables) is read from the step
 * input buffer `si` (layout in `StepLayout`), so a pipeline and its bind
 * groups serve every step of any batch shape. Weights are fp32 or bf16 packed
 * two per u32 (element 2i in the low half, as a little-endian bf16 array is
 * laid out), unpacked in the kernels; activations and the KV pool are fp32.
 */

export type WeightDtype = 'float32' | 'bfloat16';

/** Offsets (in u32) of the step input buffer's regions; capacities fixed when the step is built. */
export interface StepLayout {
  /** Query rows one step can hold (tokens of all sequences). */
  maxRows: number;
  /** Sequences one step can hold. */
  maxSeqs: number;
  /** Block-table entries per sequence. */
  maxBlocks: number;
  blockSize: number;
}

/** si[0] = rows M, si[1] = seqs S; then positions [maxRows], rowSeq [maxRows], sampleRow [maxSeqs], block tables [maxSeqs × maxBlocks]. */
export function layoutOffsets(l: StepLayout): { pos: number; rowSeq: number; sample: number; table: number; words: number } {
  const pos = 4;
  const rowSeq = pos + l.maxRows;
  const sample = rowSeq + l.maxRows;
  const table = sample + l.maxSeqs;
  return { pos, rowSeq, sample, table, words: table + l.maxSeqs * l.maxBlocks };
}

const BF16_FNS = /* wgsl */ `
fn bf2(u : u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u)); }
fn bf8a(u : vec4<u32>) -> vec4<f32> { return vec4<f32>(bf2(u.x), bf2(u.y)); }
fn bf8b(u : vec4<u32>) -> vec4<f32> { return vec4<f32>(bf2(u.z), bf2(u.w)); }
`;

function siDecl(binding: number, l: StepLayout): string {
  const o = layoutOffsets(l);
  return `@group(0) @binding(${binding}) var<storage, read> si : array<u32>;
const POS = ${o.pos}u;
const ROWSEQ = ${o.rowSeq}u;
const SAMPLE = ${o.sample}u;
const TABLE = ${o.table}u;
const MAXB = ${l.maxBlocks}u;
const BS = ${l.blockSize}u;
fn slotOf(seq : u32, p : u32) -> u32 { return si[TABLE + seq * MAXB + p / BS] * BS + p % BS; }`;
}

/** Token embedding rows: x[r] = E[tok[r]]. One workgroup per row. */
export function embedWgsl(h: number, dt: WeightDtype, l: StepLayout): string {
  const body =
    dt === 'float32'
      ? `for (var i = lid; i < ${h}u; i += 256u) { x[row * ${h}u + i] = E[t * ${h}u + i]; }`
      : `for (var i = lid; i < ${h / 2}u; i += 256u) { let v = bf2(E[t * ${h / 2}u + i]); x[row * ${h}u + 2u * i] = v.x; x[row * ${h}u + 2u * i + 1u] = v.y; }`;
  return `${BF16_FNS}
@group(0) @binding(0) var<storage, read> tok : array<u32>;
@group(0) @binding(1) var<storage, read> E : array<${dt === 'float32' ? 'f32' : 'u32'}>;
@group(0) @binding(2) var<storage, read_write> x : array<f32>;
${siDecl(3, l)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let row = wid.x;
  if (row >= si[0]) { return; }
  let t = tok[row];
  ${body}
}`;
}

/**
 * Residual add + RMSNorm, both outputs: `x += d` (when `delta`), `y = w · x · rsqrt(mean(x²) + eps)`.
 * `gather`: row i of the output is the sampled row `si[SAMPLE + i]` of x (the final norm; x is not written).
 */
export function rmsNormWgsl(h: number, eps: number, delta: boolean, gather: boolean, l: StepLayout): string {
  const bindings = [
    `@group(0) @binding(0) var<storage, ${delta && !gather ? 'read_write' : 'read'}> x : array<f32>;`,
    `@group(0) @binding(1) var<storage, read> w : array<f32>;`,
    `@group(0) @binding(2) var<storage, read_write> y : array<f32>;`,
    siDecl(3, l),
    delta ? `@group(0) @binding(4) var<storage, read> d : array<f32>;` : '',
  ];
  const load = delta ? `x[src * ${h}u + i] + d[src * ${h}u + i]` : `x[src * ${h}u + i]`;
  return `${bindings.join('\n')}
var<workgroup> red : array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let row = wid.x;
  if (row >= ${gather ? 'si[1]' : 'si[0]'}) { return; }
  let src = ${gather ? 'si[SAMPLE + row]' : 'row'};
  var ss = 0.0;
  for (var i = lid; i < ${h}u; i += 256u) {
    let v = ${load};
    ${delta && !gather ? `x[src * ${h}u + i] = v;` : ''}
    ss += v * v;
  }
  red[lid] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(red[0] / f32(${h}) + ${eps.toExponential()});
  for (var i = lid; i < ${h}u; i += 256u) {
    let v = ${delta && !gather ? `x[src * ${h}u + i]` : load};
    y[row * ${h}u + i] = w[i] * (v * inv);
  }
}`;
}

/**
 * GEMV output rows per workgroup of 256 threads (the rest of the 256 split K): 4 rows × 64 threads.
 * 16 rows × 16 threads from 8 activation rows on (re-reading the activations for 4× as many weight
 * rows) was tried on the H200 and was slower at batch 16 (qkv 855 → 1,028 µs, down 859 → 1,301 µs
 * per step; docs/benchmarks/gpu.md), so every row count uses 4 × 64.
 */
export function gemvRowsPerWg(_m: number): number {
  return 4;
}

export interface GemvFusion {
  /** SiLU·mul of two weights (gate, up). */
  gateUp?: boolean;
  /** RMSNorm of x fused in (x is the residual stream; `gn` the norm weight): y = W · (g ⊙ x) · rsqrt(mean(x²) + eps). */
  normEps?: number;
  /** 'store': y = result; 'add': y += result (the residual add); 'ropeKv': see ropeKv. */
  epilogue: 'store' | 'add' | 'ropeKv';
  /** For 'ropeKv': W's rows are permuted per head to (0, D/2, 1, D/2+1, …) so each workgroup holds whole rotation pairs. */
  ropeKv?: { attn: AttnDims; numSlots: number; layout: StepLayout };
}

/**
 * `y [M, N] = x [M, K] · Wᵀ`, W as the checkpoint stores it (`[N, K]`), for M ≤ 16 (M baked in):
 * a workgroup owns GEMV_ROWS output rows, 64 threads stream each weight row (coalesced 16-byte
 * loads) against the M activation rows; partial sums meet in workgroup memory. Fusions: RMSNorm
 * of the input, SiLU·mul of gate and up, the residual add, and (qkv) rotary + the KV-page write.
 */
export function gemvWgsl(m: number, k: number, n: number, dt: WeightDtype, f: GemvFusion = { epilogue: 'store' }): string {
  const GEMV_ROWS = gemvRowsPerWg(m);
  const GEMV_T = 256 / GEMV_ROWS;
  const P = m * GEMV_ROWS;
  const ms = Array.from({ length: m }, (_, i) => i);
  const ws = f.gateUp ? ['G', 'U'] : ['W'];
  const norm = f.normEps !== undefined;
  const tags = norm ? [...ws, 'S'] : ws;
  const wType = dt === 'float32' ? 'vec4<f32>' : 'vec4<u32>';
  const steps = dt === 'float32' ? k / 4 : k / 8;
  const K4 = k / 4;
  const accs = (tag: string) => ms.map((i) => `var a${tag}${i} = 0.0;`).join(' ');
  // x (scaled by the norm weight when fused) for row i, vec4 index e.
  const xs = (i: number, e: string) => (norm ? `(x[${i * K4}u + ${e}] * gn[${e}])` : `x[${i * K4}u + ${e}]`);
  const inner =
    dt === 'float32'
      ? `${ws.map((wn) => `let w${wn} = ${wn}[base${wn} + kk];`).join(' ')}
      ${ms.map((i) => `{ let xv = ${xs(i, 'kk')}; ${ws.map((wn) => `a${wn}${i} += dot(w${wn}, xv);`).join(' ')}${norm ? ` let xr = x[${i * K4}u + kk]; aS${i} += dot(xr, xr);` : ''} }`).join('\n      ')}`
      : `${ws.map((wn) => `let u${wn} = ${wn}[base${wn} + kk]; let w${wn}0 = bf8a(u${wn}); let w${wn}1 = bf8b(u${wn});`).join(' ')}
      ${ms.map((i) => `{ let x0 = ${xs(i, '2u * kk')}; let x1 = ${xs(i, '2u * kk + 1u')}; ${ws.map((wn) => `a${wn}${i} += dot(w${wn}0, x0) + dot(w${wn}1, x1);`).join(' ')}${norm ? ` let r0 = x[${i * K4}u + 2u * kk]; let r1 = x[${i * K4}u + 2u * kk + 1u]; aS${i} += dot(r0, r0) + dot(r1, r1);` : ''} }`).join('\n      ')}`;
  const reduce = (tag: string) =>
    `
  ${ms.map((i) => `part[${i * GEMV_ROWS * GEMV_T}u + lid] = a${tag}${i};`).join(' ')}
  workgroupBarrier();
  for (var i = lid; i < ${P * 8}u; i += 256u) {
    let b = (i / 8u) * 64u + (i % 8u) * 8u;
    part2[i] = part[b] + part[b + 1u] + part[b + 2u] + part[b + 3u] + part[b + 4u] + part[b + 5u] + part[b + 6u] + part[b + 7u];
  }
  workgroupBarrier();
  for (var i = lid; i < ${P}u; i += 256u) {
    let b = i * 8u;
    fin${tag}[i] = part2[b] + part2[b + 1u] + part2[b + 2u] + part2[b + 3u] + part2[b + 4u] + part2[b + 5u] + part2[b + 6u] + part2[b + 7u];
  }
  workgroupBarrier();`;
  const scale = norm ? ` * inverseSqrt(finS[i] / f32(${k}) + ${f.normEps!.toExponential()})` : '';
  const val = (i: string) => (f.gateUp ? `silu(finG[${i}]${scale.replace('[i]', `[${i}]`)}) * (finU[${i}]${scale.replace('[i]', `[${i}]`)})` : `finW[${i}]${scale.replace('[i]', `[${i}]`)}`);
  let extraBindings = '';
  let next = 2 + ws.length;
  if (norm) extraBindings += `@group(0) @binding(${next++}) var<storage, read> gn : array<vec4<f32>>;
`;
  let epilogue: string;
  if (f.epilogue === 'ropeKv') {
    const { attn: a, numSlots, layout } = f.ropeKv!;
    const D = a.headDim;
    const half = D / 2;
    extraBindings += `${siDecl(next++, layout)}
@group(0) @binding(${next++}) var<storage, read> cs : array<f32>;
@group(0) @binding(${next++}) var<storage, read_write> pool : array<f32>;
`;
    epilogue = `
  for (var i = lid; i < ${P}u; i += 256u) {
    let rr = i % ${GEMV_ROWS}u;
    let mm = i / ${GEMV_ROWS}u;
    let nn = (wid.y * 65535u + wid.x) * ${GEMV_ROWS}u + rr;
    if (rr % 2u == 0u && nn < ${n}u) {
      let v1 = ${val('i')};
      let v2 = ${val('i + 1u')};
      let head = nn / ${D}u;
      let j = (nn % ${D}u) / 2u;
      let p = si[POS + mm];
      if (head < ${a.heads + a.kvHeads}u) {
        let c = cs[p * ${D}u + j];
        let s = cs[p * ${D}u + ${half}u + j];
        let o1 = v1 * c - v2 * s;
        let o2 = v2 * c + v1 * s;
        if (head < ${a.heads}u) {
          let o = mm * ${a.heads * D}u + head * ${D}u + j;
          y[o] = o1;
          y[o + ${half}u] = o2;
        } else {
          let o = (slotOf(si[ROWSEQ + mm], p) * ${a.kvHeads}u + head - ${a.heads}u) * ${D}u + j;
          pool[o] = o1;
          pool[o + ${half}u] = o2;
        }
      } else {
        let o = ${numSlots * a.kvHeads * D}u + (slotOf(si[ROWSEQ + mm], p) * ${a.kvHeads}u + head - ${a.heads + a.kvHeads}u) * ${D}u + j;
        pool[o] = v1;
        pool[o + ${half}u] = v2;
      }
    }
  }`;
  } else {
    epilogue = `
  for (var i = lid; i < ${P}u; i += 256u) {
    let mm = i / ${GEMV_ROWS}u;
    let nn = (wid.y * 65535u + wid.x) * ${GEMV_ROWS}u + i % ${GEMV_ROWS}u;
    if (nn < ${n}u) { y[mm * ${n}u + nn] ${f.epilogue === 'add' ? '+=' : '='} ${val('i')}; }
  }`;
  }
  return `${BF16_FNS}
fn silu(g : f32) -> f32 { return g / (1.0 + exp(-g)); }
@group(0) @binding(0) var<storage, read> x : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y : array<f32>;
${ws.map((wn, i) => `@group(0) @binding(${2 + i}) var<storage, read> ${wn} : array<${wType}>;`).join('\n')}
${extraBindings}
var<workgroup> part : array<f32, ${P * GEMV_T}>;
var<workgroup> part2 : array<f32, ${P * 8}>;
${tags.map((t) => `var<workgroup> fin${t} : array<f32, ${P}>;`).join('\n')}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let r = lid / ${GEMV_T}u;
  let lane = lid % ${GEMV_T}u;
  let row = (wid.y * 65535u + wid.x) * ${GEMV_ROWS}u + r;
  ${tags.map(accs).join(' ')}
  if (row < ${n}u) {
    ${ws.map((wn) => `let base${wn} = row * ${steps}u;`).join(' ')}
    for (var kk = lane; kk < ${steps}u; kk += ${GEMV_T}u) {
      ${inner}
    }
  }
  ${tags.map(reduce).join('\n')}
  ${epilogue}
}`;
}

/** GEMM tile: 64 × 64 outputs per workgroup of 128 threads, 8 rows × 4 columns per thread, K in steps of 16. */
export const GEMM_TILE = 64;

/**
 * `y [M, N] = x [M, K] · Wᵀ` for many rows (prefill, large batches): 64×16 tiles of x and of W in
 * workgroup memory, each thread accumulating an 8×4 block (3 vector loads from workgroup memory per
 * 32 FMAs); M read from the step input (`rowsFromSeqs`: the sequence count, for the LM head).
 * `gateUp` fuses SiLU·mul as in the GEMV; `add` accumulates into y (the residual add).
 */
export function gemmWgsl(k: number, n: number, dt: WeightDtype, gateUp: boolean, l: StepLayout, add = false, rowsFromSeqs = false): string {
  const ws = gateUp ? ['G', 'U'] : ['W'];
  const wType = dt === 'float32' ? 'vec4<f32>' : 'vec2<u32>';
  const loadW = (wn: string) =>
    dt === 'float32' ? `${wn}[(n0 + lr) * ${k / 4}u + kq / 4u]` : `vec4<f32>(bf2(${wn}[((n0 + lr) * ${k}u + kq) / 4u].x), bf2(${wn}[((n0 + lr) * ${k}u + kq) / 4u].y))`;
  return `${BF16_FNS}
@group(0) @binding(0) var<storage, read> x : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y : array<vec4<f32>>;
${siDecl(2, l)}
${ws.map((wn, i) => `@group(0) @binding(${3 + i}) var<storage, read> ${wn} : array<${wType}>;`).join('\n')}
var<workgroup> As : array<vec4<f32>, 256>;
${ws.map((wn) => `var<workgroup> Bs${wn} : array<vec4<f32>, 256>;`).join('\n')}
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let M = si[${rowsFromSeqs ? 1 : 0}];
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  if (m0 >= M) { return; }
  let tx = lid % 16u;
  let ty = lid / 16u;
  ${ws.map((wn) => `var c${wn} : array<vec4<f32>, 8>;`).join(' ')}
  for (var k0 = 0u; k0 < ${k}u; k0 += 16u) {
    for (var h = 0u; h < 2u; h++) {
      let idx = lid + h * 128u;
      let lr = idx / 4u;
      let lk = (idx % 4u) * 4u;
      let kq = k0 + lk;
      var av = vec4<f32>(0.0);
      if (m0 + lr < M && kq < ${k}u) { av = x[((m0 + lr) * ${k}u + kq) / 4u]; }
      for (var c = 0u; c < 4u; c++) { As[(lk + c) * 16u + lr / 4u][lr % 4u] = av[c]; }
      ${ws
        .map(
          (wn) => `{
        var bv = vec4<f32>(0.0);
        if (n0 + lr < ${n}u && kq < ${k}u) { bv = ${loadW(wn)}; }
        for (var c = 0u; c < 4u; c++) { Bs${wn}[(lk + c) * 16u + lr / 4u][lr % 4u] = bv[c]; }
      }`,
        )
        .join('\n      ')}
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a0 = As[kk * 16u + ty * 2u];
      let a1 = As[kk * 16u + ty * 2u + 1u];
      ${ws.map((wn) => `{ let b = Bs${wn}[kk * 16u + tx]; c${wn}[0] += a0.x * b; c${wn}[1] += a0.y * b; c${wn}[2] += a0.z * b; c${wn}[3] += a0.w * b; c${wn}[4] += a1.x * b; c${wn}[5] += a1.y * b; c${wn}[6] += a1.z * b; c${wn}[7] += a1.w * b; }`).join('\n      ')}
    }
    workgroupBarrier();
  }
  let col = n0 + tx * 4u;
  if (col < ${n}u) {
    for (var i = 0u; i < 8u; i++) {
      let row = m0 + ty * 8u + i;
      if (row < M) {
        ${gateUp ? `let g = cG[i]; y[(row * ${n}u + col) / 4u] = g / (vec4<f32>(1.0) + exp(-g)) * cU[i];` : `y[(row * ${n}u + col) / 4u] ${add ? '+=' : '='} cW[i];`}
      }
    }
  }
}`;
}

export interface AttnDims {
  heads: number;
  kvHeads: number;
  headDim: number;
  maxPosition: number;
}

/**
 * Rotary (neox halves, rotaryDim = headDim) for the GEMM path: the fused qkv rows come out with each
 * head's features permuted to (0, D/2, 1, D/2 + 1, …) (see the qkv weight upload); rotated q goes to
 * `qr [rows, H·D]`, the rotated k and the v of each row into this layer's KV pool at its slot
 * (`blockTable[p / blockSize] · blockSize + p % blockSize`). One thread per rotation pair.
 * Pool layout: K `[slots, Hk, D]` then V `[slots, Hk, D]`.
 */
export function ropeKvWgsl(a: AttnDims, numSlots: number, l: StepLayout): string {
  const D = a.headDim;
  const half = D / 2;
  const NH = a.heads + 2 * a.kvHeads;
  const W = NH * D;
  return `${siDecl(0, l)}
@group(0) @binding(1) var<storage, read> qkv : array<f32>;
@group(0) @binding(2) var<storage, read_write> pool : array<f32>;
@group(0) @binding(3) var<storage, read> cs : array<f32>;
@group(0) @binding(4) var<storage, read_write> qr : array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let idx = (wid.y * 65535u + wid.x) * 256u + lid;
  let row = idx / ${NH * half}u;
  if (row >= si[0]) { return; }
  let rem = idx % ${NH * half}u;
  let head = rem / ${half}u;
  let i = rem % ${half}u;
  let p = si[POS + row];
  let b = row * ${W}u + head * ${D}u;
  let x1 = qkv[b + 2u * i];
  let x2 = qkv[b + 2u * i + 1u];
  if (head < ${a.heads + a.kvHeads}u) {
    let c = cs[p * ${D}u + i];
    let s = cs[p * ${D}u + ${half}u + i];
    let o1 = x1 * c - x2 * s;
    let o2 = x2 * c + x1 * s;
    if (head < ${a.heads}u) {
      let o = row * ${a.heads * D}u + head * ${D}u + i;
      qr[o] = o1;
      qr[o + ${half}u] = o2;
    } else {
      let o = (slotOf(si[ROWSEQ + row], p) * ${a.kvHeads}u + head - ${a.heads}u) * ${D}u + i;
      pool[o] = o1;
      pool[o + ${half}u] = o2;
    }
  } else {
    let o = ${numSlots * a.kvHeads * D}u + (slotOf(si[ROWSEQ + row], p) * ${a.kvHeads}u + head - ${a.heads + a.kvHeads}u) * ${D}u + i;
    pool[o] = x1;
    pool[o + ${half}u] = x2;
  }
}`;
}

/**
 * Paged causal attention for every query row of the step (decode, prefill, chunked prefill, mixed):
 * row r of sequence s at position p sees that sequence's keys 0..=p through its block table.
 * One workgroup per (query head, row): 256 keys scored per tile (one per thread), an online
 * softmax across tiles; for P·V the threads split into 256/D groups of D dims, each group
 * summing its share of the tile's keys. GQA: head h reads KV head ⌊h / (H / Hk)⌋.
 */
export function attentionWgsl(a: AttnDims, numSlots: number, l: StepLayout): string {
  const D = a.headDim;
  const NG = 256 / D;
  const G = a.heads / a.kvHeads;
  const vOff = numSlots * a.kvHeads * D;
  return `${siDecl(0, l)}
@group(0) @binding(1) var<storage, read> qr : array<f32>;
@group(0) @binding(2) var<storage, read> kv4 : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> kv : array<f32>;
@group(0) @binding(4) var<storage, read_write> out : array<f32>;
var<workgroup> q4 : array<vec4<f32>, ${D / 4}>;
var<workgroup> red : array<f32, 256>;
var<workgroup> pr : array<f32, 256>;
var<workgroup> slots : array<u32, 256>;
var<workgroup> accS : array<f32, 256>;
var<workgroup> lS : array<f32, ${NG}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let h = wid.x;
  let row = wid.y;
  if (row >= si[0]) { return; }
  let hk = h / ${G}u;
  let seq = si[ROWSEQ + row];
  let n = si[POS + row] + 1u;
  if (lid < ${D / 4}u) {
    let qb = row * ${a.heads * D}u + h * ${D}u + lid * 4u;
    q4[lid] = vec4<f32>(qr[qb], qr[qb + 1u], qr[qb + 2u], qr[qb + 3u]);
  }
  workgroupBarrier();
  let g = lid / ${D}u;
  let d = lid % ${D}u;
  var m = -1e30;
  var lsum = 0.0;
  var acc = 0.0;
  for (var t0 = 0u; t0 < n; t0 += 256u) {
    let j = t0 + lid;
    var s = -1e30;
    if (j < n) {
      let slot = slotOf(seq, j);
      slots[lid] = slot;
      let kb = (slot * ${a.kvHeads}u + hk) * ${D / 4}u;
      var dotv = 0.0;
      for (var e = 0u; e < ${D / 4}u; e++) { dotv += dot(q4[e], kv4[kb + e]); }
      s = dotv * ${(1 / Math.sqrt(D)).toExponential(10)};
    }
    red[lid] = s;
    workgroupBarrier();
    for (var st = 128u; st > 0u; st >>= 1u) {
      if (lid < st) { red[lid] = max(red[lid], red[lid + st]); }
      workgroupBarrier();
    }
    let mNew = max(m, red[0]);
    var e = 0.0;
    if (j < n) { e = exp(s - mNew); }
    pr[lid] = e;
    workgroupBarrier();
    let alpha = exp(m - mNew);
    acc *= alpha;
    lsum *= alpha;
    let tile = min(256u, n - t0);
    for (var t = g; t < tile; t += ${NG}u) {
      let pt = pr[t];
      acc += pt * kv[${vOff}u + (slots[t] * ${a.kvHeads}u + hk) * ${D}u + d];
      lsum += pt;
    }
    m = mNew;
    workgroupBarrier();
  }
  accS[lid] = acc;
  if (d == 0u) { lS[g] = lsum; }
  workgroupBarrier();
  if (g == 0u) {
    var o = 0.0;
    var L = 0.0;
    for (var i = 0u; i < ${NG}u; i++) { o += accS[i * ${D}u + d]; L += lS[i]; }
    out[(row * ${a.heads}u + h) * ${D}u + d] = o / L;
  }
}`;
}

/** Greedy sampling on the device: argmax of each sampled row's logits (first index on ties). */
export function argmaxWgsl(v: number, l: StepLayout): string {
  return `${siDecl(0, l)}
@group(0) @binding(1) var<storage, read> logits : array<f32>;
@group(0) @binding(2) var<storage, read_write> tokOut : array<u32>;
var<workgroup> bv : array<f32, 256>;
var<workgroup> bi : array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let s = wid.x;
  if (s >= si[1]) { return; }
  var best = -3.4e38;
  var arg = 0xffffffffu;
  for (var i = lid; i < ${v}u; i += 256u) {
    let x = logits[s * ${v}u + i];
    if (x > best) { best = x; arg = i; }
  }
  bv[lid] = best;
  bi[lid] = arg;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid < st) {
      let ov = bv[lid + st];
      let oi = bi[lid + st];
      if (ov > bv[lid] || (ov == bv[lid] && oi < bi[lid])) { bv[lid] = ov; bi[lid] = oi; }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { tokOut[s] = bi[0]; }
}`;
}

/**
 * Paged causal attention for many query rows (prefill): one workgroup per (KV head, row) serves the
 * whole GQA group of H / Hk query heads, so each key and value is read from the pool once per
 * group instead of once per head; tiles of keys and values are staged in workgroup memory. Each
 * head's 256·Hk/H threads score one key each per tile; an online softmax runs per head.
 */
export function attentionGqaWgsl(a: AttnDims, numSlots: number, l: StepLayout): string {
  const D = a.headDim;
  const G = a.heads / a.kvHeads;
  const TPG = 256 / G;
  const T = TPG;
  const KG = TPG >= D ? TPG / D : 1;
  const DPT = TPG >= D ? 1 : D / TPG;
  const D4 = D / 4;
  const vOff4 = (numSlots * a.kvHeads * D) / 4;
  const us = Array.from({ length: DPT }, (_, u) => u);
  return `${siDecl(0, l)}
@group(0) @binding(1) var<storage, read> qr : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kv4 : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out : array<f32>;
var<workgroup> qs : array<vec4<f32>, ${G * D4}>;
var<workgroup> Ks : array<vec4<f32>, ${T * D4}>;
var<workgroup> Vs : array<vec4<f32>, ${T * D4}>;
var<workgroup> red : array<f32, 256>;
var<workgroup> pr : array<f32, 256>;
var<workgroup> accS : array<f32, 256>;
var<workgroup> lS : array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let hk = wid.x;
  let row = wid.y;
  if (row >= si[0]) { return; }
  let seq = si[ROWSEQ + row];
  let n = si[POS + row] + 1u;
  for (var i = lid; i < ${G * D4}u; i += 256u) { qs[i] = qr[row * ${(a.heads * D) / 4}u + hk * ${G * D4}u + i]; }
  let g = lid / ${TPG}u;
  let tl = lid % ${TPG}u;
  let d = tl % ${D}u;
  let sub = tl / ${D}u;
  var m = -1e30;
  var lsum = 0.0;
  ${us.map((u) => `var acc${u} = 0.0;`).join(' ')}
  for (var t0 = 0u; t0 < n; t0 += ${T}u) {
    let tile = min(${T}u, n - t0);
    for (var i = lid; i < ${T * D4}u; i += 256u) {
      let kt = i / ${D4}u;
      let e = i % ${D4}u;
      var kv = vec4<f32>(0.0);
      var vv = vec4<f32>(0.0);
      if (kt < tile) {
        let base = (slotOf(seq, t0 + kt) * ${a.kvHeads}u + hk) * ${D4}u + e;
        kv = kv4[base];
        vv = kv4[${vOff4}u + base];
      }
      Ks[i] = kv;
      Vs[i] = vv;
    }
    workgroupBarrier();
    var s = -1e30;
    if (tl < tile) {
      var dotv = 0.0;
      for (var e = 0u; e < ${D4}u; e++) { dotv += dot(qs[g * ${D4}u + e], Ks[tl * ${D4}u + e]); }
      s = dotv * ${(1 / Math.sqrt(D)).toExponential(10)};
    }
    red[lid] = s;
    workgroupBarrier();
    for (var st = ${TPG / 2}u; st > 0u; st >>= 1u) {
      if (tl < st) { red[lid] = max(red[lid], red[lid + st]); }
      workgroupBarrier();
    }
    let mNew = max(m, red[g * ${TPG}u]);
    var e = 0.0;
    if (tl < tile) { e = exp(s - mNew); }
    pr[lid] = e;
    workgroupBarrier();
    let alpha = exp(m - mNew);
    lsum *= alpha;
    ${us.map((u) => `acc${u} *= alpha;`).join(' ')}
    for (var t = ${KG > 1 ? 'sub' : '0u'}; t < tile; t += ${KG}u) {
      let pt = pr[g * ${TPG}u + t];
      lsum += pt;
      ${us.map((u) => `{ let dd = ${DPT > 1 ? `tl + ${u * TPG}u` : 'd'}; acc${u} += pt * Vs[t * ${D4}u + dd / 4u][dd % 4u]; }`).join('\n      ')}
    }
    m = mNew;
    workgroupBarrier();
  }
  ${
    KG > 1
      ? `accS[lid] = acc0;
  if (d == 0u) { lS[g * ${KG}u + sub] = lsum; }
  workgroupBarrier();
  if (sub == 0u) {
    var o = 0.0;
    var L = 0.0;
    for (var i = 0u; i < ${KG}u; i++) { o += accS[g * ${TPG}u + i * ${D}u + d]; L += lS[g * ${KG}u + i]; }
    out[(row * ${a.heads}u + hk * ${G}u + g) * ${D}u + d] = o / L;
  }`
      : us.map((u) => `out[(row * ${a.heads}u + hk * ${G}u + g) * ${D}u + tl + ${u * TPG}u] = acc${u} / lsum;`).join('\n  ')
  }
}`;
}

import { describe, expect, it } from 'vitest';
import { toBf16 } from './fp16.js';
import { availableIsas } from './kernels.js';
import { ATTN_SEQ_FIELDS, planKernels, type HostMatrix, type PagedAttentionArgs, type View } from './plan-ops.js';
import { quantizeQ4_0, quantizeQ8_0 } from './quantize.js';

let seed = 777;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const random = (len: number, scale = 1) => Float32Array.from({ length: len }, () => rnd() * scale);
const view = (data: Float32Array, offset: number, stride: number): View => ({ data, offset, stride });

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const isas = availableIsas();
const portable = planKernels({ isa: 'portable' });

describe.each(isas.filter((i) => i !== 'portable'))('plan ops, native %s against the portable path', (isa) => {
  const nat = planKernels({ isa, threads: 2 });

  it.each([
    { m: 1, k: 64, n: 40 },
    { m: 5, k: 96, n: 37 },
    { m: 9, k: 128, n: 70 },
  ])('linear in every format, strided views, accumulate and bias (m $m, k $k, n $n)', ({ m, k, n }) => {
    const dense = random(n * k, 0.5);
    const kn = new Float32Array(k * n);
    for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) kn[j * n + r] = dense[r * k + j]!;
    const weights: HostMatrix[] = [
      { format: 'fp32', n, k, data: dense, layout: 'nk' },
      { format: 'fp32', n, k, data: kn, layout: 'kn' },
      { format: 'bf16', n, k, data: toBf16(dense) },
      { format: 'q8_0', n, k, ...quantizeQ8_0(dense) },
      { format: 'q4_0', n, k, ...quantizeQ4_0(dense) },
    ];
    const xs = random(m * (k + 7) + 3);
    const bias = random(n);
    for (const w of weights)
      for (const [acc, b] of [[false, null], [true, bias]] as const) {
        const start = random(m * (n + 5) + 2);
        const a = Float32Array.from(start), c = Float32Array.from(start);
        nat.linear(view(xs, 3, k + 7), m, w, view(a, 2, n + 5), acc, b);
        portable.linear(view(xs, 3, k + 7), m, w, view(c, 2, n + 5), acc, b);
        expect(maxAbsDiff(a, c), `${w.format} ${'layout' in w ? w.layout : ''} acc ${acc}`).toBeLessThan(2e-4);
        // columns outside the view are untouched
        expect(a[0]).toBe(start[0]);
        expect(a[2 + n]).toBe(start[2 + n]);
      }
  });

  it('rmsNorm (groups, fused residual, residual init, in place), rotary (neox, gpt-j, partial), gated acts, add, softcap, embed', () => {
    const rows = 3, width = 48, group = 16;
    const w = random(group);
    for (const init of [false, true]) {
      const x = random(rows * 50), res = random(rows * width);
      const [x1, r1, x2, r2] = [Float32Array.from(x), Float32Array.from(res), Float32Array.from(x), Float32Array.from(res)];
      nat.rmsNorm(view(x1, 1, 50), view(x1, 1, 50), view(r1, 0, width), init, rows, width, group, w, 1e-5);
      portable.rmsNorm(view(x2, 1, 50), view(x2, 1, 50), view(r2, 0, width), init, rows, width, group, w, 1e-5);
      expect(maxAbsDiff(x1, x2)).toBeLessThan(1e-5);
      expect(maxAbsDiff(r1, r2)).toBe(0);
    }
    for (const neox of [true, false]) {
      const x = random(rows * 70), cos = random(rows * 6), sin = random(rows * 6);
      const [a, b] = [Float32Array.from(x), Float32Array.from(x)];
      nat.rotary(view(a, 4, 70), rows, 4, 16, 12, neox, cos, sin);
      portable.rotary(view(b, 4, 70), rows, 4, 16, 12, neox, cos, sin);
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
      expect(a[4 + 12]).toBe(x[4 + 12]); // past rotaryDim: untouched
    }
    for (const act of ['silu', 'gelu_tanh'] as const) {
      const x = random(rows * 40, 4), [a, b] = [new Float32Array(rows * 20), new Float32Array(rows * 20)];
      nat.gatedAct(act, view(x, 0, 40), view(a, 0, 20), rows, 20);
      portable.gatedAct(act, view(x, 0, 40), view(b, 0, 20), rows, 20);
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    }
    const p = random(rows * 10), q = random(rows * 10), [s1, s2] = [new Float32Array(rows * 10), new Float32Array(rows * 10)];
    nat.add(view(p, 0, 10), view(q, 0, 10), view(s1, 0, 10), rows, 10);
    portable.add(view(p, 0, 10), view(q, 0, 10), view(s2, 0, 10), rows, 10);
    expect(maxAbsDiff(s1, s2)).toBe(0);
    const c1 = random(rows * 40, 60);
    const c2 = Float32Array.from(c1);
    nat.softcap(view(c1, 0, 40), rows, 40, 30);
    portable.softcap(view(c2, 0, 40), rows, 40, 30);
    expect(maxAbsDiff(c1, c2)).toBeLessThan(1e-5);
    const table = random(11 * 8), ids = Int32Array.of(20, 23, 5, 30);
    for (const t of [{ format: 'fp32', n: 11, k: 8, data: table, layout: 'nk' }, { format: 'bf16', n: 11, k: 8, data: toBf16(table) }] as const) {
      const [e1, e2] = [new Float32Array(4 * 8), new Float32Array(4 * 8)];
      nat.embed(t, ids, 20, 1.5, view(e1, 0, 8));
      portable.embed(t, ids, 20, 1.5, view(e2, 0, 8));
      expect(maxAbsDiff(e1, e2)).toBe(0);
      expect(e1.subarray(16, 24).every((v) => v === 0)).toBe(true); // id 5 is outside [20, 31)
    }
  });

  it('a view outside its array is a RangeError naming it', () => {
    const x = new Float32Array(10);
    expect(() => nat.add(view(x, 0, 5), view(x, 0, 5), view(x, 6, 5), 2, 5)).toThrow(/out view/);
  });
});

/** Dense causal attention of one sequence, float64, from its full K/V rows [N, Hk, D]. */
function denseAttention(q: Float32Array, keys: Float32Array[], vals: Float32Array[], pos: number, h: number, G: number, D: number, Dv: number, scale: number, window: number, cap: number): number[] {
  const g = Math.floor(h / G);
  const first = window > 0 ? Math.max(0, pos - window + 1) : 0;
  const s: number[] = [];
  for (let j = first; j <= pos; j++) {
    let d = 0;
    for (let c = 0; c < D; c++) d += q[h * D + c]! * keys[j]![g * D + c]!;
    d *= scale;
    s.push(cap > 0 ? cap * Math.tanh(d / cap) : d);
  }
  const mx = Math.max(...s);
  const e = s.map((x) => Math.exp(x - mx));
  const sum = e.reduce((a, b) => a + b, 0);
  const out = new Array<number>(Dv).fill(0);
  e.forEach((p, i) => {
    for (let c = 0; c < Dv; c++) out[c]! += (p / sum) * vals[first + i]![g * Dv + c]!;
  });
  return out;
}

describe.each(isas)('paged attention (%s) against dense causal attention', (isa) => {
  const k8 = planKernels({ isa, threads: 2 });
  it.each([
    { name: 'GQA, decode + chunk + prefill', H: 4, Hk: 2, D: 16, Dv: 16, window: 0, cap: 0, latent: false },
    { name: 'sliding window, soft cap', H: 2, Hk: 1, D: 8, Dv: 8, window: 3, cap: 5, latent: false },
    { name: 'latent cache (V = K prefix)', H: 3, Hk: 1, D: 12, Dv: 8, window: 0, cap: 0, latent: true },
  ])('$name', ({ H, Hk, D, Dv, window, cap, latent }) => {
    const bs = 4, numBlocks = 12, G = H / Hk, scale = 0.3;
    const kCache = new Float32Array(numBlocks * Hk * bs * D), vCache = latent ? null : new Float32Array(numBlocks * Hk * bs * Dv);
    // Sequences: id 7 has 5 cached then 1 (decode); id 8 has 3 cached then 4 (a chunk); id 9 is a 6-token prefill.
    const spec = [
      { id: 7, ctx: 5, L: 1, table: [3, 0] },
      { id: 8, ctx: 3, L: 4, table: [5, 1] },
      { id: 9, ctx: 0, L: 6, table: [2, 9] },
      { id: 10, ctx: 20, L: 2, table: [4, 6, 7, 8, 10, 11] }, // ≥ 16 keys: the vector soft cap and exp
    ];
    const full = new Map<number, { k: Float32Array[]; v: Float32Array[] }>();
    const T = spec.reduce((a, s) => a + s.L, 0);
    const W = H * D + Hk * D + (latent ? 0 : Hk * Dv) + 3; // one fused qkv buffer with slack
    const qkv = new Float32Array(T * W);
    const seqs = new Int32Array(spec.length * ATTN_SEQ_FIELDS), tables: number[] = [];
    let row = 0;
    spec.forEach((s, si) => {
      const ks = Array.from({ length: s.ctx + s.L }, () => random(Hk * D));
      const vs = latent ? ks.map((k) => Float32Array.from({ length: Hk * Dv }, (_, i) => k[Math.floor(i / Dv) * D + (i % Dv)]!)) : ks.map(() => random(Hk * Dv));
      full.set(s.id, { k: ks, v: vs });
      for (let p = 0; p < s.ctx; p++)
        for (let g = 0; g < Hk; g++) {
          const slot = (s.table[Math.floor(p / bs)]! * Hk + g) * bs + (p % bs);
          kCache.set(ks[p]!.subarray(g * D, (g + 1) * D), slot * D);
          vCache?.set(vs[p]!.subarray(g * Dv, (g + 1) * Dv), slot * Dv);
        }
      for (let i = 0; i < s.L; i++) {
        qkv.set(random(H * D), (row + i) * W);
        qkv.set(ks[s.ctx + i]!, (row + i) * W + H * D);
        if (!latent) qkv.set(vs[s.ctx + i]!, (row + i) * W + H * D + Hk * D);
      }
      seqs.set([s.id, row, s.L, s.ctx, tables.length], si * ATTN_SEQ_FIELDS);
      tables.push(...s.table);
      row += s.L;
    });
    const out = new Float32Array(T * H * Dv);
    const args: PagedAttentionArgs = {
      q: view(qkv, 0, W), k: view(qkv, H * D, W), v: latent ? null : view(qkv, H * D + Hk * D, W), out: view(out, 0, H * Dv),
      kCache, vCache, seqs, tables: Int32Array.from(tables), rows: T, numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv,
      blockSize: bs, numBlocks, slidingWindow: window, scale, softCap: cap,
    };
    k8.attention(args);
    let worst = 0;
    row = 0;
    for (const s of spec) {
      const f = full.get(s.id)!;
      for (let i = 0; i < s.L; i++, row++) {
        const q = qkv.subarray(row * W, row * W + H * D);
        for (let h = 0; h < H; h++) {
          const ref = denseAttention(q, f.k, f.v, s.ctx + i, h, G, D, Dv, scale, window, cap);
          worst = Math.max(worst, maxAbsDiff(out.subarray(row * H * Dv + h * Dv, row * H * Dv + (h + 1) * Dv), ref));
        }
      }
    }
    expect(worst).toBeLessThan(1e-5);
    // a block id outside the pool names the sequence and the block
    const bad = { ...args, tables: Int32Array.from(tables.map((b, i) => (i === 3 ? numBlocks : b))) };
    expect(() => k8.attention(bad)).toThrow(/sequence 8: block 1 is 12, outside the pool of 12 blocks/);
  });
});

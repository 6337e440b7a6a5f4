/**
 * The plan ops in plain JS (plan-ops.ts documents each): what runs without
 * the addon, and the reference the native paths are tested against. Same
 * formulas and operation order as native/dense.c (and the tfjs path), each
 * elementwise result rounded to fp32 (`Math.fround`) where it is stored.
 */
import { gemmBf16Portable, gemmQ4_0Portable, gemmQ8_0Portable } from './portable.js';
import type { EmbedTable, HostMatrix, View } from './plan-types.js';

const fr = Math.fround;

function checkView(v: View, rows: number, width: number, what: string): void {
  if (rows > 0 && (v.offset < 0 || v.stride < width || v.offset + (rows - 1) * v.stride + width > v.data.length)) {
    throw new RangeError(`plan op: the ${what} view (offset ${v.offset}, ${rows} rows × ${width}, stride ${v.stride}) is outside its array of ${v.data.length}`);
  }
}

/** Rows × width of a view as a contiguous copy. */
function gather(v: View, rows: number, width: number): Float32Array {
  const out = new Float32Array(rows * width);
  for (let i = 0; i < rows; i++) out.set(v.data.subarray(v.offset + i * v.stride, v.offset + i * v.stride + width), i * width);
  return out;
}

export function linearPortable(x: View, m: number, w: HostMatrix, out: View, accumulate: boolean, bias: Float32Array | null): void {
  const { n, k } = w;
  checkView(x, m, k, 'x');
  checkView(out, m, n, 'out');
  if (bias && bias.length !== n) throw new RangeError(`plan op: bias has ${bias.length} values, the weight ${n} rows`);
  if (m === 0) return;
  const xs = gather(x, m, k);
  const y = new Float32Array(m * n);
  if (w.format === 'q8_0') gemmQ8_0Portable(xs, m, k, w, n, y);
  else if (w.format === 'q4_0') gemmQ4_0Portable(xs, m, k, w, n, y);
  else if (w.format === 'bf16') gemmBf16Portable(xs, m, k, w.data, n, y);
  else gemmF32Portable(xs, m, k, w.data, n, w.layout === 'kn', y);
  for (let i = 0; i < m; i++) {
    const o = out.offset + i * out.stride;
    for (let r = 0; r < n; r++) {
      const v = bias ? fr(y[i * n + r]! + bias[r]!) : y[i * n + r]!;
      out.data[o + r] = accumulate ? out.data[o + r]! + v : v;
    }
  }
}

/** `out[m, n] = x · W`, W `[k, n]` (kn) or `[n, k]`, fp32 products summed in double and rounded once. */
function gemmF32Portable(x: Float32Array, m: number, k: number, w: Float32Array, n: number, kn: boolean, out: Float32Array): void {
  for (let i = 0; i < m; i++)
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += x[i * k + j]! * w[kn ? j * n + r : r * k + j]!;
      out[i * n + r] = s;
    }
}

export function rmsNormPortable(x: View, out: View, res: View | null, init: boolean, rows: number, width: number, group: number, w: Float32Array, eps: number): void {
  if (!(group >= 1) || width % group !== 0 || w.length !== group) throw new RangeError(`plan op: rmsNorm width ${width} must be whole groups of ${group}, the weight one group (${w.length})`);
  checkView(x, rows, width, 'x');
  checkView(out, rows, width, 'out');
  if (res) checkView(res, rows, width, 'residual');
  const src = new Float32Array(width);
  for (let r = 0; r < rows; r++) {
    const xo = x.offset + r * x.stride;
    if (res) {
      const ro = res.offset + r * res.stride;
      for (let j = 0; j < width; j++) res.data[ro + j] = init ? x.data[xo + j]! : x.data[xo + j]! + res.data[ro + j]!;
      src.set(res.data.subarray(ro, ro + width));
    } else {
      src.set(x.data.subarray(xo, xo + width));
    }
    const oo = out.offset + r * out.stride;
    for (let g = 0; g < width; g += group) {
      let ss = 0;
      for (let j = 0; j < group; j++) ss += src[g + j]! * src[g + j]!;
      const inv = fr(1 / fr(Math.sqrt(fr(fr(ss / group) + eps))));
      for (let j = 0; j < group; j++) out.data[oo + g + j] = w[j]! * fr(src[g + j]! * inv);
    }
  }
}

export function rotaryPortable(x: View, rows: number, heads: number, headSize: number, rot: number, neox: boolean, cos: Float32Array, sin: Float32Array): void {
  checkView(x, rows, heads * headSize, 'x');
  const half = rot / 2;
  if (cos.length < rows * half || sin.length < rows * half) throw new RangeError(`plan op: rotary needs cos/sin [${rows}, ${half}]`);
  const d = x.data;
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < heads; h++) {
      const b = x.offset + r * x.stride + h * headSize;
      for (let i = 0; i < half; i++) {
        const c = cos[r * half + i]!, s = sin[r * half + i]!;
        const [a, bb] = neox ? [b + i, b + i + half] : [b + 2 * i, b + 2 * i + 1];
        const x1 = d[a]!, x2 = d[bb]!;
        d[a] = fr(x1 * c) - fr(x2 * s);
        d[bb] = fr(x2 * c) + fr(x1 * s);
      }
    }
}

const SQRT_2_OVER_PI = fr(Math.sqrt(2 / Math.PI));

export function gatedActPortable(act: 'silu' | 'gelu_tanh', x: View, out: View, rows: number, half: number): void {
  checkView(x, rows, 2 * half, 'x');
  checkView(out, rows, half, 'out');
  for (let r = 0; r < rows; r++) {
    const xo = x.offset + r * x.stride, oo = out.offset + r * out.stride;
    for (let j = 0; j < half; j++) {
      const g = x.data[xo + j]!, u = x.data[xo + half + j]!;
      if (act === 'silu') {
        out.data[oo + j] = fr(g * fr(1 / fr(1 + fr(Math.exp(-g))))) * u;
      } else {
        const inner = fr(SQRT_2_OVER_PI * fr(g + fr(fr(0.044715) * fr(g * fr(g * g)))));
        out.data[oo + j] = fr(fr(0.5 * g) * fr(1 + fr(Math.tanh(inner)))) * u;
      }
    }
  }
}

export function addPortable(a: View, b: View, out: View, rows: number, width: number): void {
  checkView(a, rows, width, 'a');
  checkView(b, rows, width, 'b');
  checkView(out, rows, width, 'out');
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < width; j++) out.data[out.offset + r * out.stride + j] = a.data[a.offset + r * a.stride + j]! + b.data[b.offset + r * b.stride + j]!;
}

export function softcapPortable(x: View, rows: number, width: number, cap: number): void {
  if (!(cap > 0)) throw new RangeError(`plan op: softcap cap ${cap} must be positive`);
  checkView(x, rows, width, 'x');
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < width; j++) {
      const i = x.offset + r * x.stride + j;
      x.data[i] = fr(Math.tanh(fr(x.data[i]! / cap))) * cap;
    }
}

export function embedPortable(table: EmbedTable, ids: Int32Array, vocabStart: number, scale: number, out: View): void {
  const { n: rows, k: dim } = table;
  if (table.data.length !== rows * dim) throw new RangeError(`plan op: the embedding table has ${table.data.length} values, not ${rows} × ${dim}`);
  checkView(out, ids.length, dim, 'out');
  const bits = new Uint32Array(1);
  const asF32 = new Float32Array(bits.buffer);
  for (let t = 0; t < ids.length; t++) {
    const o = out.offset + t * out.stride;
    const r = ids[t]! - vocabStart;
    if (r < 0 || r >= rows) {
      out.data.fill(0, o, o + dim);
      continue;
    }
    for (let j = 0; j < dim; j++) {
      let v: number;
      if (table.format === 'bf16') {
        bits[0] = table.data[r * dim + j]! << 16;
        v = asF32[0]!;
      } else {
        v = table.data[table.layout === 'kn' ? j * rows + r : r * dim + j]!;
      }
      out.data[o + j] = v * scale;
    }
  }
}

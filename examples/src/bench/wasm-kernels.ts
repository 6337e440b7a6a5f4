/**
 * bench:kernels' wasm SIMD candidate: our own Q8_0 / Q4_0 GEMV/GEMM (a8, as the native kernels) written in
 * WAT and assembled at run time with wabt (installed by scripts/setup-kernel-bench.sh). Two variants:
 * 'simd128' (i16 widening + i32x4.dot_i16x8_s, every Node 20) and 'relaxed' (i32x4.relaxed_dot_i8x16_i7x16_add_s:
 * Q8_0 as |w| · sign(x, w), Q4_0 nibbles as the 7-bit operand with the exact -8·Σx correction; Node 20 needs
 * --experimental-wasm-relaxed-simd). Weights are copied into wasm memory once per weight object, with the
 * fp16 scales widened to f32 there (wasm has no f16 load); activations are quantized in JS (the a8 rule).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fp16ToFp32, quantizeActivationsQ8_0, type Q4_0Weight, type Q8_0Weight } from '@weft/cpu-kernels';
import { KERNEL_BENCH_DEPS } from './kernel-candidates.js';

/** One block's integer dot into $dot (i32x4), per variant and format; $w0/$x0/$x1 are loaded by the caller. */
const BLOCK: Record<string, string> = {
  'q8 simd128': `
      (local.set $w1 (v128.load offset=16 (local.get $wp)))
      (local.set $dot (i32x4.add
        (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_s (local.get $w0)) (i16x8.extend_low_i8x16_s (local.get $x0)))
                   (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_s (local.get $w0)) (i16x8.extend_high_i8x16_s (local.get $x0))))
        (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_s (local.get $w1)) (i16x8.extend_low_i8x16_s (local.get $x1)))
                   (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_s (local.get $w1)) (i16x8.extend_high_i8x16_s (local.get $x1))))))`,
  'q8 relaxed': `
      (local.set $w1 (v128.load offset=16 (local.get $wp)))
      (local.set $dot (i32x4.relaxed_dot_i8x16_i7x16_add_s
        (v128.bitselect (i8x16.neg (local.get $x1)) (local.get $x1) (i8x16.lt_s (local.get $w1) (v128.const i32x4 0 0 0 0)))
        (i8x16.abs (local.get $w1))
        (i32x4.relaxed_dot_i8x16_i7x16_add_s
          (v128.bitselect (i8x16.neg (local.get $x0)) (local.get $x0) (i8x16.lt_s (local.get $w0) (v128.const i32x4 0 0 0 0)))
          (i8x16.abs (local.get $w0)) (v128.const i32x4 0 0 0 0))))`,
  'q4 simd128': `
      (local.set $w1 (i8x16.shr_u (local.get $w0) (i32.const 4)))
      (local.set $w0 (v128.and (local.get $w0) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)))
      (local.set $dot (i32x4.add
        (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_u (local.get $w0)) (i16x8.extend_low_i8x16_s (local.get $x0)))
                   (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_u (local.get $w0)) (i16x8.extend_high_i8x16_s (local.get $x0))))
        (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_u (local.get $w1)) (i16x8.extend_low_i8x16_s (local.get $x1)))
                   (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_u (local.get $w1)) (i16x8.extend_high_i8x16_s (local.get $x1))))))`,
  'q4 relaxed': `
      (local.set $w1 (i8x16.shr_u (local.get $w0) (i32.const 4)))
      (local.set $w0 (v128.and (local.get $w0) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)))
      (local.set $dot (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $x1) (local.get $w1)
        (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $x0) (local.get $w0) (v128.const i32x4 0 0 0 0))))`,
};

/** gemm(x, xd, xs, m, k, w, wd, n, out): x int8 [m,k], xd f32 [m,k/32], xs i32 [m,k/32] (the Q4_0 correction -8·Σx), w, wd f32. */
function func(name: string, q4: boolean, variant: string): string {
  const wStride = q4 ? 16 : 32;
  return `
  (func (export "${name}") (param $x i32) (param $xd i32) (param $xs i32) (param $m i32) (param $k i32) (param $w i32) (param $wd i32) (param $n i32) (param $out i32)
    (local $r i32) (local $i i32) (local $b i32) (local $nb i32) (local $wp i32) (local $xp i32) (local $wdp i32) (local $xdp i32)
    (local $acc v128) (local $dot v128) (local $w0 v128) (local $w1 v128) (local $x0 v128) (local $x1 v128) (local $s f32) (local $c f32)
    (local.set $nb (i32.shr_u (local.get $k) (i32.const 5)))
    (local.set $r (i32.const 0))
    (loop $rows
      (local.set $i (i32.const 0))
      (loop $acts
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $c (f32.const 0))
        (local.set $wp (i32.add (local.get $w) (i32.mul (local.get $r) (i32.mul (local.get $nb) (i32.const ${wStride})))))
        (local.set $xp (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $k))))
        (local.set $wdp (i32.add (local.get $wd) (i32.shl (i32.mul (local.get $r) (local.get $nb)) (i32.const 2))))
        (local.set $xdp (i32.shl (i32.mul (local.get $i) (local.get $nb)) (i32.const 2)))
        (local.set $b (i32.const 0))
        (loop $blocks
          (local.set $w0 (v128.load (local.get $wp)))
          (local.set $x0 (v128.load (local.get $xp)))
          (local.set $x1 (v128.load offset=16 (local.get $xp)))
          ${BLOCK[`${q4 ? 'q4' : 'q8'} ${variant}`]}
          (local.set $s (f32.mul (f32.load (local.get $wdp)) (f32.load (i32.add (local.get $xd) (local.get $xdp)))))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (f32x4.convert_i32x4_s (local.get $dot)) (f32x4.splat (local.get $s)))))
          ${q4 ? `(local.set $c (f32.add (local.get $c) (f32.mul (f32.convert_i32_s (i32.load (i32.add (local.get $xs) (local.get $xdp)))) (local.get $s))))` : ''}
          (local.set $wp (i32.add (local.get $wp) (i32.const ${wStride})))
          (local.set $xp (i32.add (local.get $xp) (i32.const 32)))
          (local.set $wdp (i32.add (local.get $wdp) (i32.const 4)))
          (local.set $xdp (i32.add (local.get $xdp) (i32.const 4)))
          (br_if $blocks (i32.lt_u (local.tee $b (i32.add (local.get $b) (i32.const 1))) (local.get $nb))))
        (f32.store (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $r)) (i32.const 2)))
          (f32.add (local.get $c) (f32.add
            (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
            (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc))))))
        (br_if $acts (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $m))))
      (br_if $rows (i32.lt_u (local.tee $r (i32.add (local.get $r) (i32.const 1))) (local.get $n)))))`;
}

/** The part of the WebAssembly JS API used here (the workspace's lib has no DOM types). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  instantiate(bytes: Uint8Array): Promise<{ instance: { exports: Record<string, unknown> } }>;
}
interface WasmMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export interface WasmKernels {
  variants: string[];
  note: string;
  gemmQ8_0(variant: string, x: Float32Array, m: number, k: number, w: Q8_0Weight, n: number, out: Float32Array): void;
  gemmQ4_0(variant: string, x: Float32Array, m: number, k: number, w: Q4_0Weight, n: number, out: Float32Array): void;
}

export async function wasmKernels(): Promise<WasmKernels> {
  const wabtInit = createRequire(join(KERNEL_BENCH_DEPS, 'package.json'))('wabt') as () => Promise<{
    parseWat(name: string, text: string, features: Record<string, boolean>): { toBinary(o: object): { buffer: Uint8Array } };
  }>;
  const wabt = await wabtInit();
  // Relaxed SIMD where this Node validates it AND computes it right: a probe of 1·1 in lane 0 must give 1
  // (Node 20.20's experimental relaxed dot was seen returning twice the product on this CPU).
  let relaxedWhy = 'relaxed SIMD not validated by this Node (Node 20 needs --experimental-wasm-relaxed-simd): simd128 only';
  let relaxedOk = false;
  try {
    const probe = wabt.parseWat('probe.wat', `(module (memory (export "m") 1) (func (export "f") (result i32)
      (i32.store8 (i32.const 0) (i32.const 1)) (i32.store8 (i32.const 16) (i32.const 1))
      (i32x4.extract_lane 0 (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load (i32.const 0)) (v128.load (i32.const 16)) (v128.const i32x4 0 0 0 0)))))`, { simd: true, relaxed_simd: true }).toBinary({}).buffer;
    if (WebAssembly.validate(probe)) {
      const got = ((await WebAssembly.instantiate(probe)).instance.exports.f as () => number)();
      relaxedOk = got === 1;
      relaxedWhy = relaxedOk ? 'relaxed SIMD on' : `relaxed SIMD validates but i32x4.relaxed_dot_i8x16_i7x16_add_s gives ${got} for 1·1: excluded, simd128 only`;
    }
  } catch (e) {
    relaxedWhy = `relaxed SIMD probe failed (${(e as Error).message.split('\n')[0]}): simd128 only`;
  }
  const variants = relaxedOk ? ['simd128', 'relaxed'] : ['simd128'];
  const text = `(module (memory (export "mem") 1 65536)${variants.map((v) => func(`q8_${v}`, false, v) + func(`q4_${v}`, true, v)).join('')})`;
  const bin = wabt.parseWat('kernels.wat', text, { simd: true, relaxed_simd: relaxedOk }).toBinary({}).buffer;
  const { instance } = await WebAssembly.instantiate(bin);
  const mem = instance.exports.mem as WasmMemory;
  type Fn = (...a: number[]) => void;
  let top = 1 << 16;
  const alloc = (bytes: number) => {
    const at = top;
    top = (top + bytes + 63) & ~63;
    if (top > mem.buffer.byteLength) mem.grow(Math.ceil((top - mem.buffer.byteLength) / 65536));
    return at;
  };
  const placed = new WeakMap<object, { w: number; wd: number }>();
  const place = (w: Q8_0Weight | Q4_0Weight) => {
    let p = placed.get(w);
    if (!p) {
      p = { w: alloc(w.qs.byteLength), wd: alloc(w.d.length * 4) };
      new Uint8Array(mem.buffer, p.w, w.qs.byteLength).set(new Uint8Array(w.qs.buffer, w.qs.byteOffset, w.qs.byteLength));
      const d = new Float32Array(mem.buffer, p.wd, w.d.length);
      for (let i = 0; i < w.d.length; i++) d[i] = fp16ToFp32(w.d[i]!);
      placed.set(w, p);
    }
    return p;
  };
  const scratch = { at: 0, bytes: 0 };
  const run = (fn: string, x: Float32Array, m: number, k: number, w: Q8_0Weight | Q4_0Weight, n: number, out: Float32Array) => {
    const p = place(w);
    const a = quantizeActivationsQ8_0(x, k);
    const nb = k / 32;
    const need = m * k + m * nb * 8 + m * n * 4 + 256;
    if (need > scratch.bytes) Object.assign(scratch, { at: alloc(need), bytes: need });
    const xq = scratch.at, xd = xq + ((m * k + 15) & ~15), xs = xd + m * nb * 4, o = xs + m * nb * 4;
    new Int8Array(mem.buffer, xq, m * k).set(a.qs);
    new Float32Array(mem.buffer, xd, m * nb).set(a.d);
    const sx = new Int32Array(mem.buffer, xs, m * nb);
    for (let b = 0; b < m * nb; b++) {
      let s = 0;
      for (let j = 0; j < 32; j++) s += a.qs[b * 32 + j]!;
      sx[b] = -8 * s;
    }
    (instance.exports[fn] as Fn)(xq, xd, xs, m, k, p.w, p.wd, n, o);
    out.set(new Float32Array(mem.buffer, o, m * n));
  };
  return {
    variants,
    note: relaxedWhy,
    gemmQ8_0: (v, x, m, k, w, n, out) => run(`q8_${v}`, x, m, k, w, n, out),
    gemmQ4_0: (v, x, m, k, w, n, out) => run(`q4_${v}`, x, m, k, w, n, out),
  };
}

import { describe, expect, it } from 'vitest';
import { fromBf16, toBf16 } from './fp16.js';
import { availableIsas, cpuKernels, kernelInfo } from './kernels.js';
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0, roundTripActivationsQ8_0 } from './quantize.js';

let seed = 12345;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const random = (len: number, scale = 1) => Float32Array.from({ length: len }, () => rnd() * scale);

/** Dense x · Wᵀ in float64 and Σ|x·w| (the size of the rounding the fp32 kernels may differ by). */
function dense(x: Float32Array, m: number, k: number, w: Float32Array, n: number): { y: Float64Array; mag: Float64Array } {
  const y = new Float64Array(m * n);
  const mag = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let r = 0; r < n; r++) {
      let s = 0, a = 0;
      for (let j = 0; j < k; j++) {
        const p = x[i * k + j]! * w[r * k + j]!;
        s += p;
        a += Math.abs(p);
      }
      y[i * n + r] = s;
      mag[i * n + r] = a;
    }
  return { y, mag };
}

function expectClose(out: Float32Array, ref: { y: Float64Array; mag: Float64Array }, what: string) {
  let worst = 0;
  for (let i = 0; i < out.length; i++) {
    expect(Number.isFinite(out[i]!), `${what}: out[${i}] = ${out[i]}`).toBe(true);
    worst = Math.max(worst, Math.abs(out[i]! - ref.y[i]!) / (ref.mag[i]! + 1e-30));
  }
  expect(worst, what).toBeLessThan(2e-6);
}

const SHAPES = [
  { m: 1, k: 32, n: 1 },
  { m: 1, k: 96, n: 13 }, // an odd number of blocks, n not a multiple of 8
  { m: 3, k: 2048, n: 37 },
  { m: 16, k: 160, n: 67 },
  { m: 17, k: 256, n: 31 },
  { m: 5, k: 1024, n: 130 },
];

describe('gemm kernels against dense math on the dequantized weights', () => {
  const isas = availableIsas();
  it('lists the paths it has, portable always', () => {
    expect(isas.at(-1)).toBe('portable');
    expect(isas).toContain(kernelInfo().isa);
    console.log(`cpu-kernels: ${isas.join(', ')} (${kernelInfo().reason})`);
  });

  for (const isa of isas) {
    for (const threads of isa === 'portable' ? [1] : [1, 2]) {
      describe(`${isa}, ${threads} thread(s)`, () => {
        const kern = cpuKernels({ isa, threads });
        for (const { m, k, n } of SHAPES) {
          const x = random(m * k, 3);
          x[0] = 0; // a block with a zero somewhere and (below) an all-zero block
          if (k >= 64) x.fill(0, 32, 64);
          const wf = random(n * k, 0.05);
          const xa8 = roundTripActivationsQ8_0(x, k);
          it(`Q8_0 m=${m} k=${k} n=${n} (a8)`, () => {
            const w = quantizeQ8_0(wf);
            const out = new Float32Array(m * n);
            kern.gemmQ8_0(x, m, k, w, n, out);
            expectClose(out, dense(xa8, m, k, dequantizeQ8_0(w), n), `${isa} Q8_0`);
          });
          it(`Q4_0 m=${m} k=${k} n=${n} (a8)`, () => {
            const w = quantizeQ4_0(wf);
            const out = new Float32Array(m * n);
            kern.gemmQ4_0(x, m, k, w, n, out);
            expectClose(out, dense(xa8, m, k, dequantizeQ4_0(w), n), `${isa} Q4_0`);
          });
          it(`bf16 m=${m} k=${k} n=${n} (weight-only)`, () => {
            const w = toBf16(wf);
            const out = new Float32Array(m * n);
            kern.gemmBf16(x, m, k, w, n, out);
            expectClose(out, dense(x, m, k, fromBf16(w), n), `${isa} bf16`);
          });
        }
      });
    }
  }

  it('bf16 takes any k', () => {
    const m = 2, k = 45, n = 9;
    const x = random(m * k);
    const w = toBf16(random(n * k));
    for (const isa of isas) {
      const out = new Float32Array(m * n);
      cpuKernels({ isa }).gemmBf16(x, m, k, w, n, out);
      expectClose(out, dense(x, m, k, fromBf16(w), n), `${isa} bf16 k=45`);
    }
  });

  it('names the argument that is wrong', () => {
    const kern = cpuKernels();
    const w = quantizeQ8_0(random(4 * 64));
    expect(() => kern.gemmQ8_0(new Float32Array(64), 1, 64, w, 4, new Float32Array(3))).toThrow(/out \[m=1, n=4\] has 3 elements, expected 4/);
    expect(() => kern.gemmQ8_0(new Float32Array(64), 1, 64, w, 5, new Float32Array(5))).toThrow(/w.qs \[n=5, k=64\]/);
    expect(() => kern.gemmQ4_0(new Float32Array(48), 1, 48, quantizeQ4_0(random(64)), 1, new Float32Array(1))).toThrow(/48 is not a positive multiple of 32/);
    expect(() => cpuKernels({ isa: 'avx9000' })).toThrow(/isa 'avx9000' is not available here/);
  });
});

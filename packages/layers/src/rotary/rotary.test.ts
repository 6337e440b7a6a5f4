import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { getRope, yarnFindCorrectionRange, yarnGetMscale, type RopeScaling } from './index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// ---- An independent float64 reference, written from HF's formulas one element at a time. ----

function refInvFreq(base: number, dim: number, s: RopeScaling | undefined, maxPos: number, seqLen = 0): number[] {
  const half = dim / 2;
  const plain = Array.from({ length: half }, (_, i) => 1 / Math.pow(base, (2 * i) / dim));
  const type = s?.type ?? 'default';
  if (type === 'default') return plain;
  if (type === 'linear') return plain.map((v) => v / s!.factor!);
  if (type === 'dynamic') {
    if (seqLen <= maxPos) return plain;
    const f = s!.factor!;
    const b = base * Math.pow((f * seqLen) / maxPos - (f - 1), dim / (dim - 2));
    return Array.from({ length: half }, (_, i) => 1 / Math.pow(b, (2 * i) / dim));
  }
  if (type === 'llama3') {
    const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: old } = s as Required<RopeScaling>;
    return plain.map((inv) => {
      const wavelen = (2 * Math.PI) / inv;
      if (wavelen < old / hi) return inv;
      if (wavelen > old / lo) return inv / factor;
      const smooth = (old / wavelen - lo) / (hi - lo);
      return (1 - smooth) * (inv / factor) + smooth * inv;
    });
  }
  // yarn
  const factor = s!.factor!;
  const orig = s!.originalMaxPositionEmbeddings ?? maxPos;
  const corr = (rot: number) => (dim * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(base));
  let low = corr(s!.betaFast ?? 32);
  let high = corr(s!.betaSlow ?? 1);
  if (s!.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  return plain.map((extrap, i) => {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const w = 1 - ramp; // weight of extrapolation
    return (extrap / factor) * (1 - w) + extrap * w;
  });
}

function refMscale(s: RopeScaling | undefined): number {
  if (s?.type !== 'yarn') return 1;
  const m = (scale: number, k = 1) => (scale <= 1 ? 1 : 0.1 * k * Math.log(scale) + 1);
  if (s.mscale && s.mscaleAllDim) return m(s.factor!, s.mscale) / m(s.factor!, s.mscaleAllDim);
  return m(s.factor!);
}

/** x `[T][H][D]` flattened; rotates the first rotaryDim dims of each head. */
function refRope(x: Float32Array, T: number, H: number, D: number, positions: number[], inv: number[], att: number, rd: number, neox: boolean): Float64Array {
  const out = Float64Array.from(x);
  const half = rd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const o = (t * H + h) * D;
      for (let i = 0; i < half; i++) {
        const c = Math.cos(positions[t]! * inv[i]!) * att;
        const s = Math.sin(positions[t]! * inv[i]!) * att;
        const [a, b] = neox ? [o + i, o + i + half] : [o + 2 * i, o + 2 * i + 1];
        out[a] = x[a]! * c - x[b]! * s;
        out[b] = x[b]! * c + x[a]! * s;
      }
    }
  }
  return out;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const CASES: Array<{ name: string; base: number; maxPos: number; scaling?: RopeScaling }> = [
  { name: 'default', base: 10000, maxPos: 2048 },
  { name: 'linear', base: 10000, maxPos: 2048, scaling: { type: 'linear', factor: 4 } },
  {
    name: 'llama3',
    base: 500000,
    maxPos: 2048,
    scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  },
  // DeepSeek V3: mscale == mscale_all_dim, so cos/sin are not scaled.
  {
    name: 'yarn (DeepSeek V3)',
    base: 10000,
    maxPos: 2048,
    scaling: { type: 'yarn', factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1 },
  },
  // mscale ≠ mscale_all_dim: cos/sin scaled by their ratio.
  {
    name: 'yarn (mscale ratio)',
    base: 10000,
    maxPos: 2048,
    scaling: { type: 'yarn', factor: 16, originalMaxPositionEmbeddings: 512, mscale: 1, mscaleAllDim: 0.5 },
  },
  // Qwen-style yarn: no mscale keys, attention factor 0.1·ln(factor) + 1; and no truncation (gpt-oss).
  { name: 'yarn (no truncate)', base: 150000, maxPos: 2048, scaling: { type: 'yarn', factor: 32, originalMaxPositionEmbeddings: 4096, truncate: false } },
  { name: 'dynamic', base: 10000, maxPos: 64, scaling: { type: 'dynamic', factor: 2 } },
];

describe('rotary embedding vs a float64 reference', () => {
  for (const c of CASES) {
    for (const neox of [true, false]) {
      it(`${c.name}, ${neox ? 'neox' : 'interleaved'}`, () => {
        const T = 7;
        const H = 3;
        const Hk = 1;
        const D = 40; // rotaryDim 32 + 8 passed through
        const rd = 32;
        const rope = getRope({ headSize: D, rotaryDim: rd, maxPosition: c.maxPos, base: c.base, isNeoxStyle: neox, scaling: c.scaling });
        // dynamic: positions past maxPosition trigger the NTK base; others: spread over the cache.
        const positions = c.scaling?.type === 'dynamic' ? [0, 1, 5, 30, 63, 80, 99] : [0, 1, 2, 17, 300, 1500, c.maxPos - 1];
        const r = rng(7);
        const qData = Float32Array.from({ length: T * H * D }, r);
        const kData = Float32Array.from({ length: T * Hk * D }, r);
        const before = tf.memory().numTensors;
        const [qo, ko] = tf.tidy(() =>
          rope.forward(tf.tensor1d(positions, 'int32'), tf.tensor3d(qData, [T, H, D]), tf.tensor3d(kData, [T, Hk, D])),
        );
        const seqLen = Math.max(...positions) + 1;
        const inv = refInvFreq(c.base, rd, c.scaling, c.maxPos, seqLen);
        const att = refMscale(c.scaling);
        const qRef = refRope(qData, T, H, D, positions, inv, att, rd, neox);
        const kRef = refRope(kData, T, Hk, D, positions, inv, att, rd, neox);
        // float32 angles (as HF) against float64 ones: the error grows like position · 2^-24.
        const tol = 2e-6 * Math.max(...positions) + 1e-6;
        expect(maxAbsDiff(qo.dataSync(), qRef)).toBeLessThan(tol);
        expect(maxAbsDiff(ko.dataSync(), kRef)).toBeLessThan(tol);
        // Dims past rotaryDim are untouched.
        const q = qo.arraySync();
        expect(q[3]![2]!.slice(rd)).toEqual(Array.from(qData.subarray((3 * H + 2) * D + rd, (3 * H + 3) * D)));
        qo.dispose();
        ko.dispose();
        expect(tf.memory().numTensors).toBe(before);
        rope.dispose();
      });
    }
  }

  it('inverse frequencies match the float64 formulas to float32 precision', () => {
    for (const c of CASES) {
      const rope = getRope({ headSize: 128, rotaryDim: 128, maxPosition: 16, base: c.base, isNeoxStyle: true, scaling: c.scaling });
      const ref = refInvFreq(c.base, 128, c.scaling, 16);
      for (let i = 0; i < ref.length; i++) expect(Math.abs(rope.invFreq[i]! - ref[i]!) / ref[i]!, `${c.name} [${i}]`).toBeLessThan(1e-6);
      expect(rope.attentionScaling).toBeCloseTo(refMscale(c.scaling), 12);
      rope.dispose();
    }
  });
});

describe('llama3 frequency bands (Llama 3.1: θ 500000, dim 128, factor 8, low 1, high 4, original 8192)', () => {
  const scaling: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
  const rope = getRope({ headSize: 128, rotaryDim: 128, maxPosition: 8, base: 500000, isNeoxStyle: true, scaling });
  const plain = (i: number) => 1 / Math.pow(500000, i / 64);

  it('pairs 0..28 (wavelength < 2048) keep their frequency', () => {
    // Pair 28: wavelength 2π·500000^(28/64) = 1956.5 < 8192/4.
    for (let i = 0; i <= 28; i++) expect(rope.invFreq[i]! / plain(i)).toBeCloseTo(1, 6);
  });
  it('pairs 35..63 (wavelength > 8192) are divided by 8', () => {
    // Pair 35: wavelength 8218.7 > 8192/1.
    for (let i = 35; i < 64; i++) expect(rope.invFreq[i]! / plain(i)).toBeCloseTo(1 / 8, 6);
  });
  it('pairs 29..34 are interpolated smoothly', () => {
    // Pair 32: inv = 500000^-0.5 = 1.4142136e-3, wavelength 4442.883,
    // smooth = (8192/4442.883 − 1)/3 = 0.2812826, result = inv·(0.7187174/8 + 0.2812826) = 5.248462e-4.
    expect(rope.invFreq[32]!).toBeCloseTo(5.248462e-4, 9);
    for (let i = 29; i <= 34; i++) {
      const ratio = rope.invFreq[i]! / plain(i);
      expect(ratio).toBeGreaterThan(1 / 8);
      expect(ratio).toBeLessThan(1);
    }
    // The ratio falls monotonically through the band.
    for (let i = 29; i < 34; i++) expect(rope.invFreq[i + 1]! / plain(i + 1)).toBeLessThan(rope.invFreq[i]! / plain(i));
  });
});

describe('yarn, DeepSeek V3 parameters (dim 64, θ 10000, factor 40, original 4096, β 32/1, mscale 1/1)', () => {
  const scaling: RopeScaling = { type: 'yarn', factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1 };

  it('correction range is [10, 23]', () => {
    // corr_dim(32) = 64·ln(4096/(64π))/(2·ln 10000) = 10.47 → floor 10; corr_dim(1) = 22.51 → ceil 23.
    expect(yarnFindCorrectionRange(32, 1, 64, 10000, 4096)).toEqual([10, 23]);
    expect(yarnFindCorrectionRange(32, 1, 64, 10000, 4096, false)[0]).toBeCloseTo(10.4722408, 6);
  });

  it('pairs ≤ 10 extrapolate, pairs ≥ 23 interpolate (÷40), and cos/sin are unscaled', () => {
    const rope = getRope({ headSize: 64, rotaryDim: 64, maxPosition: 8, base: 10000, isNeoxStyle: false, scaling });
    const plain = (i: number) => 1 / Math.pow(10000, i / 32);
    for (let i = 0; i <= 10; i++) expect(rope.invFreq[i]! / plain(i)).toBeCloseTo(1, 6);
    for (let i = 23; i < 32; i++) expect(rope.invFreq[i]! / plain(i)).toBeCloseTo(1 / 40, 6);
    // Pair 16 is 6/13 of the way up the ramp.
    expect(rope.invFreq[16]! / plain(16)).toBeCloseTo(((1 / 40) * 6) / 13 + 7 / 13, 6);
    expect(rope.attentionScaling).toBe(1);
    // Softmax scale multiplier: mscale(40, 1)² = (0.1·ln 40 + 1)² = 1.3688879² = 1.8738542.
    expect(rope.attentionScaleFactor).toBeCloseTo(1.8738542, 6);
    rope.dispose();
  });

  it('yarnGetMscale', () => {
    expect(yarnGetMscale(1, 5)).toBe(1);
    expect(yarnGetMscale(40, 0.707)).toBeCloseTo(0.1 * 0.707 * Math.log(40) + 1, 12);
  });

  it('no softmax multiplier without mscale_all_dim or for non-yarn types', () => {
    const base = { headSize: 64, rotaryDim: 64, maxPosition: 8, base: 10000, isNeoxStyle: false };
    const noAllDim = getRope({ ...base, scaling: { type: 'yarn', factor: 40 } });
    expect(noAllDim.attentionScaleFactor).toBe(1);
    expect(noAllDim.attentionScaling).toBeCloseTo(1 + 0.1 * Math.log(40), 12);
    noAllDim.dispose();
    const plain = getRope(base);
    expect(plain.attentionScaleFactor).toBe(1);
    plain.dispose();
  });
});

describe('float32 angles as HF computes them', () => {
  it('the angle is float32(position · float32(inv_freq)), not the float64 product', () => {
    const maxPos = 100_001;
    const rope = getRope({ headSize: 64, rotaryDim: 64, maxPosition: maxPos, base: 10000, isNeoxStyle: true });
    rope.reserve(100_001);
    const [cos] = rope.cosSin(tf.tensor1d([100_000], 'int32'));
    const got = cos.dataSync();
    let worst = 0;
    for (let i = 0; i < 32; i++) {
      const inv32 = rope.invFreq[i]!;
      expect(got[i]).toBe(Math.fround(Math.cos(Math.fround(100_000 * inv32))));
      worst = Math.max(worst, Math.abs(got[i]! - Math.cos(100_000 / Math.pow(10000, (2 * i) / 64))));
    }
    // At position 1e5 the float32 angle is visibly off the exact one; HF has this error and so must we.
    expect(worst).toBeGreaterThan(1e-3);
    tf.dispose(cos);
    rope.dispose();
  });
});

describe('the cos/sin cache grows with the positions used', () => {
  it('a 2e7-position config builds 8192 rows; reserve grows it (doubling, capped at maxPosition) to the same values', () => {
    const opts = { headSize: 16, rotaryDim: 16, base: 10000, isNeoxStyle: true, scaling: { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } };
    const huge = getRope({ ...opts, maxPosition: 20_000_000 });
    expect(huge.bytes()).toBe(2 * 8192 * 8 * 4);
    huge.reserve(100);
    expect(huge.bytes()).toBe(2 * 8192 * 8 * 4);
    huge.reserve(9000);
    expect(huge.bytes()).toBe(2 * 16384 * 8 * 4);
    huge.reserve(40_000);
    expect(huge.bytes()).toBe(2 * 40_000 * 8 * 4);
    const small = getRope({ ...opts, maxPosition: 40_001 });
    small.reserve(40_001);
    expect(small.bytes()).toBe(2 * 40_001 * 8 * 4);
    small.reserve(1e9);
    expect(small.bytes()).toBe(2 * 40_001 * 8 * 4);
    const pos = tf.tensor1d([0, 1, 8191, 8192, 16_383, 39_999], 'int32');
    const [a, b] = [huge.cosSin(pos), small.cosSin(pos)];
    expect(Array.from(a[0].dataSync())).toEqual(Array.from(b[0].dataSync()));
    expect(Array.from(a[1].dataSync())).toEqual(Array.from(b[1].dataSync()));
    tf.dispose([pos, ...a, ...b]);
    huge.dispose();
    small.dispose();
  });
});

describe('DeepSeek V3 HF layout', () => {
  it('HF apply_rotary_pos_emb_interleave (de-interleave, then rotate_half) gives the same q·k as the interleaved rotation', () => {
    const D = 16;
    const r = rng(3);
    const qd = Float32Array.from({ length: D }, r);
    const kd = Float32Array.from({ length: D }, r);
    const rope = getRope({ headSize: D, rotaryDim: D, maxPosition: 64, base: 10000, isNeoxStyle: false });
    const [qo, ko] = rope.forward(tf.tensor1d([37], 'int32'), tf.tensor3d(qd, [1, 1, D]), tf.tensor3d(kd, [1, 1, D]));
    const ours = tf.sum(tf.mul(qo, ko)).dataSync()[0]!;
    // HF: x.view(d/2, 2).transpose → [evens | odds], then NeoX rotation; output stays in that order.
    const deinterleave = (x: Float32Array) => Float32Array.from([...x.filter((_, i) => i % 2 === 0), ...x.filter((_, i) => i % 2 === 1)]);
    const inv = Array.from(rope.invFreq);
    const hq = refRope(deinterleave(qd), 1, 1, D, [37], inv, 1, D, true);
    const hk = refRope(deinterleave(kd), 1, 1, D, [37], inv, 1, D, true);
    const hf = hq.reduce((s, v, i) => s + v * hk[i]!, 0);
    expect(ours).toBeCloseTo(hf, 5);
    tf.dispose([qo, ko]);
    rope.dispose();
  });
});

describe('rotary config errors', () => {
  it('rejects odd rotary dims, missing parameters and non-int32 positions', () => {
    expect(() => getRope({ headSize: 8, rotaryDim: 7, maxPosition: 8, base: 10000, isNeoxStyle: true })).toThrow(/rotaryDim=7/);
    expect(() => getRope({ headSize: 8, rotaryDim: 8, maxPosition: 8, isNeoxStyle: true })).toThrow(/base/);
    expect(() => getRope({ headSize: 8, rotaryDim: 8, maxPosition: 8, base: 1e4, isNeoxStyle: true, scaling: { type: 'llama3', factor: 8 } })).toThrow(
      /low_freq_factor/,
    );
    const rope = getRope({ headSize: 8, rotaryDim: 8, maxPosition: 8, isNeoxStyle: true, scaling: { type: 'default', theta: 10000 } });
    expect(rope.base).toBe(10000);
    const x = tf.zeros([1, 1, 8]) as tf.Tensor3D;
    expect(() => rope.forward(tf.tensor1d([0]), x, x)).toThrow(/int32/);
    tf.dispose(x);
    rope.dispose();
  });
});

describe('getRope sharing', () => {
  it('equal options share one cache, freed after the last owner disposes', () => {
    const opts = { headSize: 16, rotaryDim: 16, maxPosition: 32, base: 10000, isNeoxStyle: true, scaling: { type: 'linear' as const, factor: 2 } };
    const before = tf.memory().numTensors;
    const a = getRope(opts);
    const b = getRope({ ...opts, scaling: { ...opts.scaling } });
    const c = getRope({ ...opts, maxPosition: 64 });
    expect(b).toBe(a);
    expect(c).not.toBe(a);
    expect(tf.memory().numTensors).toBe(before + 4);
    a.dispose();
    expect(a.disposed).toBe(false);
    b.dispose();
    expect(a.disposed).toBe(true);
    c.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // A fresh call after the last dispose builds a new one.
    const d = getRope(opts);
    expect(d).not.toBe(a);
    d.dispose();
  });
});

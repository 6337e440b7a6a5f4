/**
 * Inverse frequencies for the default, linear, llama3 and dynamic-NTK RoPE
 * variants, reproducing Hugging Face's `modeling_rope_utils.py`.
 *
 * HF builds `inv_freq` with float32 tensor ops even when the model runs in
 * float64, and the angle error this leaves grows with the position (an ulp of
 * `inv_freq` times 100k positions is ~1e-2 rad). So every tensor op HF does
 * is mirrored here with one `Math.fround`: a float32 op is the exact result
 * rounded once, and doubles hold float32 operands exactly. Python scalars
 * meeting a float32 tensor are cast to float32 first, as torch does.
 */
import { ConfigError } from '@weft/core';

export const f32 = Math.fround;

function checkDim(dim: number): void {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0) {
    throw new ConfigError(`rotary dim must be a positive even integer, got ${dim}`);
  }
}

/** `base ** (torch.arange(0, dim, 2).float() / dim)` in float32: the per-pair wavelength / 2π. */
export function ropePowers(base: number, dim: number): Float32Array {
  checkDim(dim);
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < out.length; i++) out[i] = Math.pow(f32(base), f32((2 * i) / dim));
  return out;
}

/** `_compute_default_rope_parameters`: `1 / base^(2i/dim)`. */
export function defaultInvFreq(base: number, dim: number): Float32Array {
  return ropePowers(base, dim).map((p) => 1 / p);
}

/** `_compute_linear_scaling_rope_parameters`: positions divided by `factor`, folded into the frequencies. */
export function linearInvFreq(base: number, dim: number, factor: number): Float32Array {
  const fac = f32(factor);
  return defaultInvFreq(base, dim).map((v) => v / fac);
}

export interface Llama3Params {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/**
 * `_compute_llama3_parameters` (Llama 3.1): wavelengths shorter than
 * `orig / highFreqFactor` stay, longer than `orig / lowFreqFactor` are divided
 * by `factor`, and the band between is interpolated smoothly.
 */
export function llama3InvFreq(base: number, dim: number, p: Llama3Params): Float32Array {
  const inv = defaultInvFreq(base, dim);
  const factor = f32(p.factor);
  const lowFF = f32(p.lowFreqFactor);
  const orig = f32(p.originalMaxPositionEmbeddings);
  // Python computes these two in double; the comparison casts them to float32.
  const lowWavelen = f32(p.originalMaxPositionEmbeddings / p.lowFreqFactor);
  const highWavelen = f32(p.originalMaxPositionEmbeddings / p.highFreqFactor);
  const ffSpan = f32(p.highFreqFactor - p.lowFreqFactor);
  const twoPi = f32(2 * Math.PI);
  const out = new Float32Array(inv.length);
  for (let i = 0; i < inv.length; i++) {
    const v = inv[i]!;
    const wavelen = f32(twoPi / v);
    const scaled = wavelen > lowWavelen ? f32(v / factor) : v;
    const isMedium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (isMedium) {
      const smooth = f32(f32(f32(orig / wavelen) - lowFF) / ffSpan);
      // `(1 - smooth) * inv / factor + smooth * inv`, evaluated left to right.
      out[i] = f32(f32(f32(f32(1 - smooth) * scaled) / factor) + f32(smooth * scaled));
    } else {
      out[i] = scaled;
    }
  }
  return out;
}

/**
 * `_compute_dynamic_ntk_parameters` for a forward whose longest sequence is
 * `seqLen`. Below `maxPositionEmbeddings` HF keeps the default frequencies.
 * Above it HF recomputes the base on every forward. `seq_len` is then an int64
 * tensor, so the base update also runs in float32.
 */
export function dynamicNtkInvFreq(base: number, dim: number, factor: number, maxPositionEmbeddings: number, seqLen: number): Float32Array {
  if (seqLen <= maxPositionEmbeddings) return defaultInvFreq(base, dim);
  const fac = f32(factor);
  const ratio = f32(f32(fac * f32(seqLen)) / maxPositionEmbeddings);
  const grown = f32(Math.pow(f32(ratio - f32(factor - 1)), f32(dim / (dim - 2))));
  const newBase = f32(f32(base) * grown);
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < out.length; i++) out[i] = 1 / f32(Math.pow(newBase, f32((2 * i) / dim)));
  return out;
}

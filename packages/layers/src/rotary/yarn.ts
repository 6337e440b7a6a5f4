/**
 * YaRN (`_compute_yarn_parameters` in HF 5, vLLM's `YaRNScalingRotaryEmbedding`
 * and `DeepseekScalingRotaryEmbedding`). Pairs whose wavelength fits many times
 * in the original context keep their frequency (extrapolation), pairs with few
 * rotations are divided by `factor` (interpolation), and a linear ramp between
 * dims `low` and `high` blends the two. cos and sin are multiplied by
 * `attentionFactor`.
 */
import { ConfigError } from '@weft/core';
import { f32, ropePowers } from './frequencies.js';
import type { RopeScaling } from './types.js';

/** `yarn_get_mscale`: `0.1·m·ln(scale) + 1` (1 when scale ≤ 1). */
export function yarnGetMscale(scale = 1, mscale = 1): number {
  if (scale <= 1) return 1;
  return 0.1 * mscale * Math.log(scale) + 1;
}

/** The dimension whose pair turns `numRotations` times over `maxPosition` positions. */
export function yarnFindCorrectionDim(numRotations: number, dim: number, base: number, maxPosition: number): number {
  return (dim * Math.log(maxPosition / (numRotations * 2 * Math.PI))) / (2 * Math.log(base));
}

/**
 * `[low, high]` of the ramp, clamped to `[0, dim − 1]`. With `truncate`
 * (HF's default) they are floored/ceiled to whole dims. Note that the ramp
 * then runs over pair indices `0..dim/2`, not dims: HF and vLLM both do this.
 */
export function yarnFindCorrectionRange(
  betaFast: number,
  betaSlow: number,
  dim: number,
  base: number,
  maxPosition: number,
  truncate = true,
): [number, number] {
  let low = yarnFindCorrectionDim(betaFast, dim, base, maxPosition);
  let high = yarnFindCorrectionDim(betaSlow, dim, base, maxPosition);
  if (truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  return [Math.max(low, 0), Math.min(high, dim - 1)];
}

export interface YarnParams {
  factor: number;
  originalMaxPositionEmbeddings: number;
  betaFast?: number;
  betaSlow?: number;
  mscale?: number;
  mscaleAllDim?: number;
  attentionFactor?: number;
  truncate?: boolean;
}

/**
 * cos/sin multiplier: explicit `attentionFactor`, else (DeepSeek) the ratio
 * `mscale(factor, mscale) / mscale(factor, mscaleAllDim)` when both are set
 * (non-zero), else `mscale(factor)`.
 */
export function yarnAttentionFactor(p: Pick<YarnParams, 'factor' | 'mscale' | 'mscaleAllDim' | 'attentionFactor'>): number {
  if (p.attentionFactor !== undefined && p.attentionFactor !== null) return p.attentionFactor;
  if (p.mscale && p.mscaleAllDim) return yarnGetMscale(p.factor, p.mscale) / yarnGetMscale(p.factor, p.mscaleAllDim);
  return yarnGetMscale(p.factor);
}

/** Inverse frequencies and the cos/sin multiplier, float32 op by op as HF computes them. */
export function yarnInvFreq(base: number, dim: number, p: YarnParams): { invFreq: Float32Array; attentionFactor: number } {
  if (!(p.factor > 0)) throw new ConfigError(`yarn rope needs a positive factor, got ${p.factor}`);
  // HF: `get("beta_fast") or 32`, so 0 and null also mean the default.
  const betaFast = p.betaFast || 32;
  const betaSlow = p.betaSlow || 1;
  const powers = ropePowers(base, dim);
  const factor = f32(p.factor);
  const [low, highRaw] = yarnFindCorrectionRange(betaFast, betaSlow, dim, base, p.originalMaxPositionEmbeddings, p.truncate ?? true);
  const high = low === highRaw ? highRaw + 0.001 : highRaw; // HF: avoid a zero-width ramp
  const lowF = f32(low);
  const span = f32(high - low);
  const invFreq = new Float32Array(powers.length);
  for (let i = 0; i < powers.length; i++) {
    const pf = powers[i]!;
    const extrapolation = f32(1 / pf);
    const interpolation = f32(1 / f32(factor * pf));
    const ramp = Math.min(1, Math.max(0, f32(f32(i - lowF) / span)));
    const extrapolationWeight = f32(1 - ramp);
    invFreq[i] = f32(interpolation * f32(1 - extrapolationWeight)) + f32(extrapolation * extrapolationWeight);
  }
  return { invFreq, attentionFactor: yarnAttentionFactor(p) };
}

/**
 * What the softmax scale `qk_head_dim^-0.5` is multiplied by (HF
 * `DeepseekV3Attention`, vLLM DeepSeek V2/V3): `mscale(factor, mscaleAllDim)²`
 * when the rope type is not default and `mscaleAllDim` is set (non-zero).
 * Otherwise 1. HF 5's DeepseekV2Attention does not apply it, so with HF as the
 * oracle, DeepSeek V2 should use 1.
 */
export function yarnSoftmaxScaleFactor(scaling: RopeScaling | null | undefined): number {
  if (!scaling || scaling.type === 'default' || !scaling.mscaleAllDim) return 1;
  if (scaling.factor === undefined) throw new ConfigError(`rope type ${scaling.type} with mscale_all_dim needs a factor`);
  const m = yarnGetMscale(scaling.factor, scaling.mscaleAllDim);
  return m * m;
}

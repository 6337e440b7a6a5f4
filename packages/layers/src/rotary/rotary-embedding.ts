/**
 * Rotary position embedding over a flattened batch (vLLM `RotaryEmbedding`):
 * cos/sin for positions `[0, maxPosition)` are computed once, and `forward`
 * gathers the rows of its tokens' positions and rotates q and k.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '@weft/core';
import { rotaryColumnsKernel } from '../kernels/index.js';
import { defaultInvFreq, dynamicNtkInvFreq, f32, linearInvFreq, llama3InvFreq } from './frequencies.js';
import type { RopeOptions, RopeScaling, RopeType } from './types.js';
import { yarnInvFreq, yarnSoftmaxScaleFactor } from './yarn.js';

/** Rows of the cos/sin cache built at construction (grown by `reserve`). */
const INITIAL_TABLE_ROWS = 8192;

export class RotaryEmbedding {
  readonly headSize: number;
  readonly rotaryDim: number;
  readonly maxPosition: number;
  readonly base: number;
  readonly isNeoxStyle: boolean;
  readonly type: RopeType;
  readonly scaling: RopeScaling | null;
  /** float32, `rotaryDim / 2` entries. */
  readonly invFreq: Float32Array;
  /** HF `attention_scaling`: multiplies cos and sin (YaRN's mscale); 1 for the other types. */
  readonly attentionScaling: number;
  /**
   * What the softmax scale is multiplied by: `mscale(factor, mscaleAllDim)²`
   * (DeepSeek V3 with YaRN), otherwise 1. See `yarnSoftmaxScaleFactor`.
   */
  readonly attentionScaleFactor: number;
  /** Set by `getRope` to drop this instance from its table once freed. */
  onFree: (() => void) | null = null;
  private cosCache: tf.Tensor2D | null;
  /** Positions the cos/sin cache covers now (see `reserve`). */
  private tableRows = 0;
  private sinCache: tf.Tensor2D | null;
  private refs = 1;

  constructor(cfg: RopeOptions) {
    const scaling = cfg.scaling ?? null;
    const base = cfg.base ?? scaling?.theta;
    if (base === undefined || !(base > 0)) throw new ConfigError(`rope needs a positive base (rope_theta), got ${base}`);
    if (!Number.isInteger(cfg.rotaryDim) || cfg.rotaryDim <= 0 || cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim > cfg.headSize) {
      throw new ConfigError(`rotaryDim=${cfg.rotaryDim} must be even, positive and at most headSize=${cfg.headSize}`);
    }
    if (!Number.isInteger(cfg.maxPosition) || cfg.maxPosition <= 0) {
      throw new ConfigError(`rope maxPosition must be a positive integer, got ${cfg.maxPosition}`);
    }
    this.headSize = cfg.headSize;
    this.rotaryDim = cfg.rotaryDim;
    this.maxPosition = cfg.maxPosition;
    this.base = base;
    this.isNeoxStyle = cfg.isNeoxStyle;
    this.scaling = scaling;
    this.type = scaling?.type ?? 'default';
    const { invFreq, attentionScaling } = computeInvFreq(base, cfg.rotaryDim, cfg.maxPosition, scaling);
    roundInvFreq(invFreq, cfg.invFreqDtype);
    this.invFreq = invFreq;
    this.attentionScaling = attentionScaling;
    this.attentionScaleFactor = yarnSoftmaxScaleFactor(scaling);
    this.cosCache = null;
    this.sinCache = null;
    this.reserve(Math.min(cfg.maxPosition, INITIAL_TABLE_ROWS));
  }

  /**
   * Make the cos/sin cache cover positions `[0, n)` (at most maxPosition). The
   * cache starts at INITIAL_TABLE_ROWS and doubles as positions reach past it,
   * so a config's max_position_embeddings (2e7 in a hostile one: gigabytes and
   * a minute per rank) costs nothing until a sequence gets that long. Callers
   * reserve the step's largest position (host metadata) before rotating.
   */
  reserve(n: number): void {
    const want = Math.min(this.maxPosition, n);
    if (want <= this.tableRows) return;
    const rows = Math.min(this.maxPosition, Math.max(want, 2 * this.tableRows));
    const [cos, sin] = cosSinTable(this.invFreq, Int32Array.from({ length: rows }, (_, i) => i), this.attentionScaling);
    this.cosCache?.dispose();
    this.sinCache?.dispose();
    // Kept: the cache outlives whatever tidy the caller happens to run in.
    this.cosCache = tf.keep(tf.tensor2d(cos, [rows, this.rotaryDim / 2]));
    this.sinCache = tf.keep(tf.tensor2d(sin, [rows, this.rotaryDim / 2]));
    this.tableRows = rows;
  }

  /**
   * `positions` int32 `[T]` (each < maxPosition), q `[T, H, ≥rotaryDim]`, k
   * `[T, Hk, ≥rotaryDim]` → rotated q and k, same shapes.
   */
  forward(positions: tf.Tensor1D, q: tf.Tensor3D, k: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D] {
    for (const [name, x] of [['q', q], ['k', k]] as const) {
      if (x.rank !== 3 || x.shape[0] !== positions.shape[0] || x.shape[2] < this.rotaryDim) {
        throw new ConfigError(
          `rope: ${name} ${JSON.stringify(x.shape)} must be [T=${positions.shape[0]}, heads, ≥${this.rotaryDim}]`,
        );
      }
    }
    return tf.tidy(() => {
      const [cos, sin] = this.cosSin(positions);
      return [applyRotary(q, cos, sin, this.rotaryDim, this.isNeoxStyle), applyRotary(k, cos, sin, this.rotaryDim, this.isNeoxStyle)];
    });
  }

  /**
   * Rotate `heads` heads of size headSize held in columns `[colStart, ..)` of
   * a fused projection `src [T, W]` → `[T, heads·headSize]`. On webgpu this is
   * one kernel reading the fused tensor in place; elsewhere a slice and `forward`.
   */
  rotateColumns(positions: tf.Tensor1D, src: tf.Tensor2D, colStart: number, heads: number): tf.Tensor2D {
    const T = src.shape[0];
    if (positions.dtype === 'int32' && positions.shape[0] === T && this.type !== 'dynamic' && this.cosCache && this.sinCache) {
      const out = rotaryColumnsKernel(src, positions, this.cosCache, this.sinCache, {
        colStart,
        heads,
        headDim: this.headSize,
        rotaryDim: this.rotaryDim,
        isNeoxStyle: this.isNeoxStyle,
      });
      if (out) return out;
    }
    return tf.tidy(() => {
      const x = tf.reshape(tf.slice(src, [0, colStart], [T, heads * this.headSize]), [T, heads, this.headSize]) as tf.Tensor3D;
      const [cos, sin] = this.cosSin(positions);
      return tf.reshape(applyRotary(x, cos, sin, this.rotaryDim, this.isNeoxStyle), [T, heads * this.headSize]) as tf.Tensor2D;
    });
  }

  /** cos and sin rows `[T, rotaryDim/2]` for `positions`, attention scaling included. */
  cosSin(positions: tf.Tensor1D): [tf.Tensor2D, tf.Tensor2D] {
    if (positions.dtype !== 'int32') throw new ConfigError(`rope: positions must be int32, got ${positions.dtype}`);
    if (this.type === 'dynamic') {
      // HF recomputes dynamic-NTK frequencies from the longest position in the forward, which needs the values on the host.
      const pos = positions.dataSync() as Int32Array;
      const seqLen = pos.reduce((m, p) => Math.max(m, p + 1), 0);
      if (seqLen > this.maxPosition) {
        const inv = dynamicNtkInvFreq(this.base, this.rotaryDim, this.scaling?.factor ?? 1, this.maxPosition, seqLen);
        const [cos, sin] = cosSinTable(inv, pos, 1);
        return [tf.tensor2d(cos, [pos.length, inv.length]), tf.tensor2d(sin, [pos.length, inv.length])];
      }
    }
    if (!this.cosCache || !this.sinCache) throw new ConfigError('rope: used after dispose()');
    return [tf.gather(this.cosCache, positions), tf.gather(this.sinCache, positions)];
  }

  /** Bytes held by the cos/sin cache. */
  bytes(): number {
    return 2 * this.tableRows * (this.rotaryDim / 2) * 4;
  }

  /** One more owner (see `getRope`): the cache is freed when every owner has called `dispose`. */
  retain(): this {
    this.refs++;
    return this;
  }

  get disposed(): boolean {
    return this.cosCache === null;
  }

  dispose(): void {
    if (this.disposed || --this.refs > 0) return;
    this.cosCache?.dispose();
    this.sinCache?.dispose();
    this.cosCache = null;
    this.sinCache = null;
    this.onFree?.();
  }
}

function computeInvFreq(
  base: number,
  dim: number,
  maxPosition: number,
  s: RopeScaling | null,
): { invFreq: Float32Array; attentionScaling: number } {
  const type = s?.type ?? 'default';
  const need = (v: number | undefined, what: string): number => {
    if (v === undefined || v === null || !Number.isFinite(v)) throw new ConfigError(`rope type ${type} needs ${what}`);
    return v;
  };
  switch (type) {
    case 'default':
      return { invFreq: defaultInvFreq(base, dim), attentionScaling: 1 };
    case 'linear':
      return { invFreq: linearInvFreq(base, dim, need(s?.factor, 'factor')), attentionScaling: 1 };
    case 'dynamic':
      // The cache holds the frequencies below maxPosition, which are the default ones.
      need(s?.factor, 'factor');
      return { invFreq: defaultInvFreq(base, dim), attentionScaling: 1 };
    case 'llama3':
      return {
        invFreq: llama3InvFreq(base, dim, {
          factor: need(s?.factor, 'factor'),
          lowFreqFactor: need(s?.lowFreqFactor, 'low_freq_factor'),
          highFreqFactor: need(s?.highFreqFactor, 'high_freq_factor'),
          originalMaxPositionEmbeddings: need(s?.originalMaxPositionEmbeddings, 'original_max_position_embeddings'),
        }),
        attentionScaling: 1,
      };
    case 'yarn': {
      const { invFreq, attentionFactor } = yarnInvFreq(base, dim, {
        ...s,
        factor: need(s?.factor, 'factor'),
        // HF's config standardisation fills it with max_position_embeddings.
        originalMaxPositionEmbeddings: s?.originalMaxPositionEmbeddings ?? maxPosition,
      });
      return { invFreq, attentionScaling: attentionFactor };
    }
    default:
      throw new ConfigError(`rope type ${JSON.stringify(type)} is not supported (default, linear, llama3, yarn, dynamic)`);
  }
}

/**
 * cos/sin of `position · invFreq` for each position, `[positions, dim/2]`.
 * HF takes the product in float32 (`inv_freq.float() @ position_ids.float()`),
 * then cos/sin in float32, then multiplies by the attention scaling in float32.
 */
export function cosSinTable(invFreq: Float32Array, positions: ArrayLike<number>, attentionScaling: number): [Float32Array, Float32Array] {
  const half = invFreq.length;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  const scale = f32(attentionScaling);
  for (let p = 0; p < positions.length; p++) {
    const pos = f32(positions[p]!);
    for (let i = 0; i < half; i++) {
      const angle = f32(pos * invFreq[i]!);
      cos[p * half + i] = f32(Math.cos(angle)) * scale;
      sin[p * half + i] = f32(Math.sin(angle)) * scale;
    }
  }
  return [cos, sin];
}

/**
 * Rotate the first `rotaryDim` of the last axis of `x [T, H, D]`; the rest passes through.
 * `cos`/`sin` are `[T, rotaryDim/2]`. NeoX pairs dim i with dim i + rotaryDim/2; GPT-J pairs 2i with 2i+1.
 */
export function applyRotary(x: tf.Tensor3D, cos: tf.Tensor2D, sin: tf.Tensor2D, rotaryDim: number, isNeoxStyle: boolean): tf.Tensor3D {
  return tf.tidy(() => {
    const [T, H, D] = x.shape;
    const half = rotaryDim / 2;
    const rot = D === rotaryDim ? x : tf.slice(x, [0, 0, 0], [T, H, rotaryDim]);
    let rotated: tf.Tensor3D;
    if (isNeoxStyle) {
      const c = tf.reshape(cos, [T, 1, half]);
      const s = tf.reshape(sin, [T, 1, half]);
      const x1 = tf.slice(rot, [0, 0, 0], [T, H, half]);
      const x2 = tf.slice(rot, [0, 0, half], [T, H, half]);
      // HF: q·cos + rotate_half(q)·sin with rotate_half(q) = [−x2, x1].
      const o1 = tf.sub(tf.mul(x1, c), tf.mul(x2, s));
      const o2 = tf.add(tf.mul(x2, c), tf.mul(x1, s));
      rotated = tf.concat([o1, o2], 2) as tf.Tensor3D;
    } else {
      const pairs = tf.reshape(rot, [T, H, half, 2]);
      const c = tf.reshape(cos, [T, 1, half, 1]);
      const s = tf.reshape(sin, [T, 1, half, 1]);
      const even = tf.slice(pairs, [0, 0, 0, 0], [T, H, half, 1]);
      const odd = tf.slice(pairs, [0, 0, 0, 1], [T, H, half, 1]);
      // The complex product (even + i·odd)(cos + i·sin), as DeepSeek V2's `apply_rotary_emb`.
      const re = tf.sub(tf.mul(even, c), tf.mul(odd, s));
      const im = tf.add(tf.mul(odd, c), tf.mul(even, s));
      rotated = tf.reshape(tf.concat([re, im], 3), [T, H, rotaryDim]);
    }
    if (D === rotaryDim) return rotated;
    return tf.concat([rotated, tf.slice(x, [0, 0, rotaryDim], [T, H, D - rotaryDim])], 2) as tf.Tensor3D;
  });
}

/** bf16 / fp16 rounding (to nearest even) of the frequencies, in place; other dtypes leave them as they are. */
export function roundInvFreq(invFreq: Float32Array, dtype: string | undefined): void {
  if (dtype === 'bfloat16') {
    const bits = new Uint32Array(invFreq.buffer, invFreq.byteOffset, invFreq.length);
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i]!;
      bits[i] = ((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000) >>> 0;
    }
  } else if (dtype === 'float16') {
    const h = new Float32Array(1);
    for (let i = 0; i < invFreq.length; i++) {
      // Math.fround cannot round to 11 bits; scale the mantissa instead (values are in fp16's normal range).
      const v = invFreq[i]!;
      const e = Math.floor(Math.log2(Math.abs(v)));
      const q = 2 ** (e - 10);
      h[0] = Math.round(v / q) * q;
      invFreq[i] = h[0]!;
    }
  }
}

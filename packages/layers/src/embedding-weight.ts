/**
 * The weight of a vocabulary-parallel embedding `[rows, dim]`: an fp32 tensor
 * (tf.gather), or, with dtype bfloat16, bf16 rows in host memory that a lookup
 * widens row by row (and that a tied LM head multiplies through the bf16
 * kernel or a per-op widening, as an unquantized bf16 linear).
 */
import * as tf from '@tensorflow/tfjs-core';
import { WeftError, type WeightDtype } from '@weft/core';
import { applyPacked } from './quantization/linear-method.js';
import { createPackedWeight, type Bf16Weight } from './quantization/packed-weight.js';
import { Parameter, type HostTensor, type WeightLoader } from './parameter.js';

export class EmbeddingWeight extends Parameter {
  private storage: Bf16Weight | null = null;
  private filled = false;

  constructor(name: string, rows: number, dim: number, loader: WeightLoader) {
    super(name, [rows, dim], loader);
  }

  /** bf16 or fp32, chosen at load before the weight is read. */
  useDtype(dtype: WeightDtype): void {
    if (this.loaded) throw new WeftError(`${this.name}: the dtype must be chosen before the weight is loaded`);
    this.storage = dtype === 'bfloat16' ? (createPackedWeight('bf16', this.shape[0]!, this.shape[1]!) as Bf16Weight) : null;
    this.filled = false;
  }

  get packed(): Bf16Weight | null {
    return this.storage;
  }

  override get loaded(): boolean {
    return this.storage ? this.filled : super.loaded;
  }

  override get tensor(): tf.Tensor {
    if (this.storage) throw new WeftError(`${this.name} is held as bf16: use lookup() or apply()`);
    return super.tensor;
  }

  override get bytes(): number {
    return this.storage ? this.storage.bytes : super.bytes;
  }

  /** Rows of `ids` (global vocab ids; those outside `[start, start + rows)` give zero rows) as fp32 `[T, dim]`. */
  lookup(ids: Int32Array, start: number): tf.Tensor2D {
    const w = this.storage!;
    const out = new Uint32Array(ids.length * w.k);
    ids.forEach((id, t) => {
      const r = id - start;
      if (r < 0 || r >= w.n) return;
      for (let c = 0; c < w.k; c++) out[t * w.k + c] = w.data[r * w.k + c]! << 16;
    });
    return tf.tensor2d(new Float32Array(out.buffer), [ids.length, w.k]);
  }

  /** Tied LM head: `x [T, dim] → x · Wᵀ [T, rows]` on the bf16 rows. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return applyPacked(this, x);
  }

  protected override storeWhole(host: HostTensor): void {
    if (!this.storage) return super.storeWhole(host);
    this.storage.storeRows(host.data as Float32Array, 0, this.shape[0]!);
    this.filled = true;
  }

  override dispose(): void {
    super.dispose();
    this.storage = null;
    this.filled = false;
  }
}

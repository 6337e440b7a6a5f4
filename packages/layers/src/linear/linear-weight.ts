/**
 * The weight of a linear layer (or of one expert): a Parameter `[out, in]` in
 * the checkpoint's layout whose storage and matmul come from its linear
 * method (vLLM's `layer.quant_method`). Until a QuantizationConfig picks
 * another method at load, the method is fp32 and the weight is an ordinary
 * Parameter (a tensor kept as `[in, out]`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { WeftError } from '@weft/core';
import { FP32_LINEAR, kernelRoundedInput, type LinearMethodBase } from '../quantization/linear-method.js';
import type { PackedWeight } from '../quantization/packed-weight.js';
import { isRowSource, rowChunked } from '../quantization/row-chunks.js';
import { Parameter, type HostTensor, type ShardId, type WeightHandle, type WeightLoader } from '../parameter.js';

export class LinearWeight extends Parameter {
  private method: LinearMethodBase = FP32_LINEAR;
  private storage: PackedWeight | null = null;
  /** Packed rows filled so far (a fused weight arrives shard by shard). */
  private rowsStored = 0;
  /** fp32 held `[out, in]` (`holdRowMajor`); the tfjs path's `[in, out]` is then made when first asked for. */
  private rowMajor = false;
  private transposedValue: tf.Tensor | null = null;

  constructor(name: string, outFeatures: number, inFeatures: number, loader: WeightLoader, expectedShards: readonly ShardId[] = []) {
    super(name, [outFeatures, inFeatures], loader, expectedShards, true);
  }

  get outFeatures(): number {
    return this.shape[0]!;
  }

  get inFeatures(): number {
    return this.shape[1]!;
  }

  get quantMethod(): LinearMethodBase {
    return this.method;
  }

  /** The packed storage, null for fp32. */
  get packed(): PackedWeight | null {
    return this.storage;
  }

  /** vLLM's `create_weights`, at load before any tensor is read: how this weight will be held. */
  useMethod(method: LinearMethodBase): void {
    if (this.value || this.rowsStored > 0) throw new WeftError(`${this.name}: the linear method must be chosen before the weight is loaded`);
    this.method = method;
    this.storage = method.createWeights(this.outFeatures, this.inFeatures);
  }

  /**
   * Before loading: keep an fp32 value `[out, in]` as the checkpoint has it, not transposed for tfjs's matmul — for a
   * rank whose step is the host plan, whose kernels multiply by `[n, k]` (no transposed copy at upload, plan/host/
   * upload.ts). The tfjs path (a full-sequence forward, a fallback) transposes it once when it first needs it.
   * No effect on a packed weight.
   */
  holdRowMajor(): void {
    if (this.value || this.rowsStored > 0) throw new WeftError(`${this.name}: holdRowMajor must come before the weight is loaded`);
    this.rowMajor = true;
  }

  /** An fp32 value held `[out, in]` (`held` is that; `tensor` its transpose). */
  get isRowMajor(): boolean {
    return this.rowMajor && !this.storage;
  }

  get rowMajorTensor(): tf.Tensor | null {
    return this.isRowMajor ? this.held : null;
  }

  protected override get transposeOnCommit(): boolean {
    return this.storeTransposed && !this.rowMajor;
  }

  protected override commit(t: tf.Tensor): void {
    this.transposedValue?.dispose();
    this.transposedValue = null;
    super.commit(t);
  }

  override get loaded(): boolean {
    if (!this.storage) return super.loaded;
    return this.rowsStored >= this.outFeatures && this.expectedShards.every((s) => this.loadedShards.has(s));
  }

  override get tensor(): tf.Tensor {
    if (this.storage) throw new WeftError(`${this.name} is held as ${this.storage.format}: use apply() or denseTransposed()`);
    if (!this.rowMajor) return super.tensor;
    return (this.transposedValue ??= tf.keep(tf.transpose(this.held)));
  }

  override get bytes(): number {
    return this.storage ? this.storage.bytes : super.bytes + (this.transposedValue ? this.transposedValue.size * 4 : 0);
  }

  /** `x [m, in] → x · Wᵀ (+ bias) [m, out]` through the method. */
  apply(x: tf.Tensor2D, bias?: tf.Tensor | null): tf.Tensor2D {
    return this.method.apply(this, x, bias);
  }

  /** `x` as this weight's kernel sees it (Q8_0-rounded under an a8 kernel, a new tensor), or null when it is x itself. */
  roundedInput(x: tf.Tensor2D): tf.Tensor2D | null {
    return kernelRoundedInput(this, x);
  }

  /** The weight as an fp32 tensor `[in, out]` that the caller owns (MLA's absorption dequantizes kv_b_proj, as vLLM). */
  denseTransposed(): tf.Tensor2D {
    if (!this.storage) return (this.rowMajor ? tf.transpose(this.held) : tf.clone(super.tensor)) as tf.Tensor2D;
    return tf.tensor2d(this.storage.dequantizeTransposed(), [this.inFeatures, this.outFeatures]);
  }

  /** A packed weight reads its checkpoint slice a chunk of rows at a time (quantization/row-chunks.ts). */
  override load(weight: WeightHandle, shardId?: ShardId): void {
    super.load(this.storage ? rowChunked(weight) : weight, shardId);
  }

  protected override storeWhole(host: HostTensor): void {
    if (!this.storage) return super.storeWhole(host);
    this.pack(host, 0);
    this.rowsStored = this.outFeatures;
  }

  protected override storeRows(host: HostTensor, offset: number): boolean {
    if (!this.storage) return false;
    this.pack(host, offset);
    this.rowsStored += host.shape[0]!;
    return true;
  }

  /** `host`'s rows into the storage at row `offset`: chunk by chunk from a RowSource, so its fp32 never exists whole. */
  private pack(host: HostTensor, offset: number): void {
    const storage = this.storage!;
    const rows = host.shape[0]!;
    if (!isRowSource(host)) return storage.storeRows(host.data as Float32Array, offset, rows);
    const step = host.chunk;
    for (let r = 0; r < rows; r += step) {
      const len = Math.min(step, rows - r);
      storage.storeRows(host.rows(r, len), offset + r, len);
    }
  }

  override dispose(): void {
    super.dispose();
    this.transposedValue?.dispose();
    this.transposedValue = null;
    this.storage = null;
    this.rowsStored = 0;
    this.method = FP32_LINEAR;
  }
}

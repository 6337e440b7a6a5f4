/**
 * Parameters and their weight loaders (vLLM's `param.weight_loader`). A layer
 * owns Parameters; each knows how to fill itself for this rank from a full
 * checkpoint tensor, reading only its slice from disk where the layout allows.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError } from '@weft/core';

/** A host-side tensor as read from a checkpoint (floats already converted to fp32). */
export interface HostTensor {
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

/** One checkpoint tensor, not yet read: the loader narrows it to this rank's slice. */
export interface WeightHandle {
  /** Checkpoint name, for errors. */
  readonly name: string;
  readonly shape: readonly number[];
  read(): HostTensor;
  narrow(dim: number, start: number, length: number): HostTensor;
}

export type ShardId = string | number;
export type WeightLoader = (param: Parameter, weight: WeightHandle, shardId?: ShardId) => void;

export class Parameter {
  protected value: tf.Tensor | null = null;
  /** Filled regions, for fused parameters loaded from several checkpoint tensors. */
  readonly loadedShards = new Set<ShardId>();

  constructor(
    /** Name within the model, for errors. */
    readonly name: string,
    /** Shape on this rank. */
    readonly shape: readonly number[],
    readonly weightLoader: WeightLoader = defaultWeightLoader,
    /** Shards expected before the parameter is complete (fused qkv / gate_up). */
    readonly expectedShards: readonly ShardId[] = [],
    /**
     * Keep the value as the 2-D transpose of `shape` (`[in, out]` for a linear
     * weight): tfjs-wasm's matMul with transposeB is ~10× slower than without.
     * Loaders and shape checks still see the checkpoint layout.
     */
    readonly storeTransposed = false,
  ) {}

  get loaded(): boolean {
    if (this.value === null) return false;
    return this.expectedShards.every((s) => this.loadedShards.has(s));
  }

  /** The tensor (transposed if `storeTransposed`); throws if never loaded. */
  get tensor(): tf.Tensor {
    return this.held;
  }

  /** The value as this parameter holds it (what `tensor` is, unless a subclass serves another layout); throws if never loaded. */
  get held(): tf.Tensor {
    if (this.value === null) throw new CheckpointError(`parameter ${this.name} ${JSON.stringify(this.shape)} was never loaded`);
    return this.value;
  }

  load(weight: WeightHandle, shardId?: ShardId): void {
    this.weightLoader(this, weight, shardId);
  }

  /** Replace the whole value (shape checked). */
  set(host: HostTensor, source: string): void {
    checkShape(this, host.shape, source);
    this.storeWhole(host);
  }

  /** Bytes this rank holds for the value. */
  get bytes(): number {
    return this.value ? this.value.size * 4 : 0;
  }

  /** Keep a whole, shape-checked host value (a quantized linear weight stores it its own way). */
  protected storeWhole(host: HostTensor): void {
    this.commit(tf.tensor(host.data, [...this.shape], host.dtype));
  }

  /**
   * Keep `host`'s rows at row `offset` of the value, if this parameter stores rows independently
   * (quantized blocks run along the last dim): true when done, false to go through the fp32 host buffer.
   */
  protected storeRows(_host: HostTensor, _offset: number): boolean {
    return false;
  }

  /** Whether a committed value is kept as the 2-D transpose of `shape` (`storeTransposed`, unless a subclass holds it otherwise). */
  protected get transposeOnCommit(): boolean {
    return this.storeTransposed;
  }

  protected commit(t: tf.Tensor): void {
    this.value?.dispose();
    if (this.transposeOnCommit) {
      this.value = tf.transpose(t);
      t.dispose();
    } else {
      this.value = t;
    }
  }

  /** Write `host` at `offset` along `dim` of a (lazily zero-filled) host buffer; used by fused layers. */
  setSlice(host: HostTensor, dim: number, offset: number, source: string, shardId?: ShardId): void {
    const expect = [...this.shape];
    expect[dim] = host.shape[dim] ?? -1;
    checkShape(this, host.shape, source, expect);
    if (offset + host.shape[dim]! > this.shape[dim]!) {
      throw new CheckpointError(`${source}: slice at ${offset}+${host.shape[dim]} exceeds ${this.name} dim ${dim} of size ${this.shape[dim]}`);
    }
    if (dim === 0 && this.storeRows(host, offset)) {
      if (shardId !== undefined) this.loadedShards.add(shardId);
      return;
    }
    const full = this.hostBuffer ?? (this.hostBuffer = new Float32Array(this.shape.reduce((a, b) => a * b, 1)));
    const outer = this.shape.slice(0, dim).reduce((a, b) => a * b, 1);
    const inner = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    const srcRow = host.shape[dim]! * inner;
    const dstRow = this.shape[dim]! * inner;
    for (let o = 0; o < outer; o++) {
      full.set(host.data.subarray(o * srcRow, (o + 1) * srcRow), o * dstRow + offset * inner);
    }
    if (shardId !== undefined) this.loadedShards.add(shardId);
    // Upload once every shard is in (a fused parameter is loaded piece by piece).
    if (this.expectedShards.every((s) => this.loadedShards.has(s))) {
      this.commit(tf.tensor(full, [...this.shape], 'float32'));
      this.hostBuffer = null;
    }
  }
  private hostBuffer: Float32Array | null = null;

  /** Directly provide a tensor (tests, random init). Takes ownership. */
  assign(t: tf.Tensor): void {
    checkShape(this, t.shape, 'assign');
    this.commit(t);
  }

  dispose(): void {
    this.value?.dispose();
    this.value = null;
  }
}

export function checkShape(param: Parameter, got: readonly number[], source: string, expect: readonly number[] = param.shape): void {
  if (got.length !== expect.length || got.some((d, i) => d !== expect[i])) {
    throw new CheckpointError(
      `${source}: shape ${JSON.stringify(got)} does not fit parameter ${param.name} (expected ${JSON.stringify(expect)})`,
    );
  }
}

/** The full checkpoint tensor must have `expected` shape (before this rank's slice is taken). */
export function expectCheckpointShape(weight: WeightHandle, expected: readonly number[], param: Parameter): void {
  const got = weight.shape;
  if (got.length !== expected.length || got.some((d, i) => d !== expected[i])) {
    throw new CheckpointError(
      `${weight.name}: checkpoint shape ${JSON.stringify(got)}, expected ${JSON.stringify(expected)} for ${param.name}`,
    );
  }
}

/** Replicated parameter: the checkpoint tensor must have exactly this shape. */
export const defaultWeightLoader: WeightLoader = (param, weight) => {
  checkShape(param, weight.shape, weight.name);
  param.set(weight.read(), weight.name);
};

/** A host tensor already in memory, as a WeightHandle (tests, fused checkpoints). */
export function hostWeight(name: string, host: HostTensor): WeightHandle {
  return {
    name,
    shape: host.shape,
    read: () => host,
    narrow: (dim, start, length) => narrowHost(host, dim, start, length, name),
  };
}

export function narrowHost(host: HostTensor, dim: number, start: number, length: number, name = 'tensor'): HostTensor {
  const shape = host.shape;
  if (dim < 0 || dim >= shape.length || start < 0 || length < 0 || start + length > shape[dim]!) {
    throw new CheckpointError(`${name}: cannot narrow dim ${dim} [${start}, ${start + length}) of shape ${JSON.stringify(shape)}`);
  }
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  const out = host.dtype === 'float32' ? new Float32Array(outer * length * inner) : new Int32Array(outer * length * inner);
  for (let o = 0; o < outer; o++) {
    const src = (o * shape[dim]! + start) * inner;
    out.set(host.data.subarray(src, src + length * inner), o * length * inner);
  }
  const outShape = [...shape];
  outShape[dim] = length;
  return { shape: outShape, dtype: host.dtype, data: out };
}

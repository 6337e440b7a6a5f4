/**
 * vLLM's GroupCoordinator at the tensor level: one per group per rank, with
 * vLLM's attributes, every method a no-op at world size 1. Tensor data goes
 * through a Communicator as flat typed arrays; shapes and dtypes are restored
 * here. Inputs are never disposed; outputs are new tensors (except where a
 * world size of 1 hands the input back).
 */
import * as tf from '@tensorflow/tfjs-core';
import { WeftError } from '@weft/core';
import type { CommArray, Communicator, ReduceOp } from './communicator.js';
import { packJson, unpackJson } from './codec.js';
import type { MessageQueue } from './message-queue.js';
import { dimToRankAxis, normalizeDim, rankAxisToDim, splitAt } from './tensor-layout.js';

export interface GroupCoordinatorOptions {
  /** Global rank of this process/thread. */
  rank: number;
  /** Global ranks of the group, in group order. */
  ranks: number[];
  /** 'tp:0' */
  uniqueName: string;
  /** Device index on this host; defaults to the global rank (one host). */
  localRank?: number;
  /** Barriers, objects, metadata (vLLM's Gloo group). */
  cpuGroup: Communicator;
  /** Tensors (vLLM's NCCL group); defaults to cpuGroup. */
  deviceGroup?: Communicator;
  useDeviceCommunicator?: boolean;
  mqBroadcaster?: MessageQueue | null;
}

export type TensorDictValue = tf.Tensor | number | string | null;
export type TensorDict = Record<string, TensorDictValue>;

type Dtype = 'float32' | 'int32';
type DictMeta = { k: string; dtype: Dtype; shape: number[] } | { k: string; v: number | string | null };

export class GroupCoordinator {
  readonly rank: number;
  readonly ranks: number[];
  readonly worldSize: number;
  readonly localRank: number;
  readonly rankInGroup: number;
  readonly uniqueName: string;
  readonly cpuGroup: Communicator;
  readonly deviceGroup: Communicator;
  readonly useDeviceCommunicator: boolean;
  readonly deviceCommunicator: Communicator | null;
  readonly mqBroadcaster: MessageQueue | null;

  constructor(opts: GroupCoordinatorOptions) {
    this.rank = opts.rank;
    this.ranks = [...opts.ranks];
    this.worldSize = opts.ranks.length;
    this.rankInGroup = opts.ranks.indexOf(opts.rank);
    this.localRank = opts.localRank ?? opts.rank;
    this.uniqueName = opts.uniqueName;
    if (this.rankInGroup < 0) throw new WeftError(`rank ${opts.rank} is not in group ${opts.uniqueName} [${opts.ranks.join(', ')}]`);
    this.cpuGroup = opts.cpuGroup;
    this.deviceGroup = opts.deviceGroup ?? opts.cpuGroup;
    for (const [what, c] of [['cpuGroup', this.cpuGroup], ['deviceGroup', this.deviceGroup]] as const) {
      if (c.worldSize !== this.worldSize || c.rankInGroup !== this.rankInGroup) {
        throw new WeftError(
          `${opts.uniqueName}: ${what} is rank ${c.rankInGroup} of ${c.worldSize}, expected rank ${this.rankInGroup} of ${this.worldSize}`,
        );
      }
    }
    this.useDeviceCommunicator = opts.useDeviceCommunicator ?? true;
    this.deviceCommunicator = this.useDeviceCommunicator && this.worldSize > 1 ? this.deviceGroup : null;
    this.mqBroadcaster = opts.mqBroadcaster ?? null;
  }

  get firstRank(): number {
    return this.ranks[0]!;
  }
  get lastRank(): number {
    return this.ranks[this.worldSize - 1]!;
  }
  get isFirstRank(): boolean {
    return this.rank === this.firstRank;
  }
  get isLastRank(): boolean {
    return this.rank === this.lastRank;
  }
  /** Global rank after this one in the group, wrapping. */
  get nextRank(): number {
    return this.ranks[(this.rankInGroup + 1) % this.worldSize]!;
  }
  /** Global rank before this one in the group, wrapping. */
  get prevRank(): number {
    return this.ranks[(this.rankInGroup - 1 + this.worldSize) % this.worldSize]!;
  }

  async allReduce(t: tf.Tensor, op: ReduceOp = 'sum'): Promise<tf.Tensor> {
    if (this.worldSize === 1) return t;
    const out = await this.deviceGroup.allReduce(await this.dataOf(t, 'allReduce'), op);
    return tf.tensor(out, t.shape, t.dtype);
  }

  /** Concatenation along `dim` in rank order (vLLM: gather on dim 0, then move the rank axis into dim). */
  async allGather(t: tf.Tensor, dim = -1): Promise<tf.Tensor> {
    if (this.worldSize === 1) return t;
    const d = normalizeDim(dim, t.rank, `[${this.uniqueName}] allGather of shape [${t.shape.join(', ')}]`);
    const gathered = await this.deviceGroup.allGather(await this.dataOf(t, 'allGather'));
    return this.fromGathered(gathered, t.shape, d, t.dtype);
  }

  /** Sum over ranks, rank i keeping slice i along `dim`; that size must divide by the world size. */
  async reduceScatter(t: tf.Tensor, dim = -1): Promise<tf.Tensor> {
    if (this.worldSize === 1) return t;
    const ws = this.worldSize;
    const d = normalizeDim(dim, t.rank, `[${this.uniqueName}] reduceScatter of shape [${t.shape.join(', ')}]`);
    const size = t.shape[d]!;
    if (size % ws !== 0) {
      throw new WeftError(
        `[${this.uniqueName}] reduceScatter: size ${size} of dim ${d} (shape [${t.shape.join(', ')}]) is not divisible by the world size ${ws}`,
      );
    }
    const shape = [...t.shape];
    shape[d] = size / ws;
    const { outer, inner } = splitAt(shape, d);
    const arranged = dimToRankAxis(await this.dataOf(t, 'reduceScatter'), ws, outer, inner);
    return tf.tensor(await this.deviceGroup.reduceScatter(arranged), shape, t.dtype);
  }

  /** Like allGather, on `dst` (rankInGroup) only; null elsewhere. */
  async gather(t: tf.Tensor, dst = 0, dim = -1): Promise<tf.Tensor | null> {
    if (this.worldSize === 1) return t;
    const d = normalizeDim(dim, t.rank, `[${this.uniqueName}] gather of shape [${t.shape.join(', ')}]`);
    const gathered = await this.deviceGroup.gather(await this.dataOf(t, 'gather'), dst);
    return gathered === null ? null : this.fromGathered(gathered, t.shape, d, t.dtype);
  }

  /** `src` is a rankInGroup; others may pass null and learn shape and dtype. The source gets its own tensor back. */
  async broadcast(t: tf.Tensor | null, src = 0): Promise<tf.Tensor> {
    const isSrc = this.rankInGroup === src;
    if (this.worldSize === 1) {
      if (t === null) throw new WeftError(`[${this.uniqueName}] broadcast: the source rank passed null`);
      return t;
    }
    if (isSrc && t === null) throw new WeftError(`[${this.uniqueName}] broadcast: the source rank ${this.rank} passed null`);
    const shape = await this.cpuGroup.broadcastObject<number[]>(isSrc ? t!.shape : undefined, src);
    const data = await this.deviceGroup.broadcast(isSrc ? await this.dataOf(t!, 'broadcast') : null, src);
    return isSrc ? t! : tf.tensor(data, shape, dtypeOfArray(data));
  }

  /** Through the message queue when this group has one and src is 0 (as vLLM), else the CPU group. */
  async broadcastObject<T>(obj: T | undefined, src = 0): Promise<T> {
    if (this.worldSize === 1) return obj as T;
    if (this.mqBroadcaster && src === 0) {
      if (this.rankInGroup === 0) {
        await this.mqBroadcaster.enqueue(obj);
        return obj as T;
      }
      return (await this.mqBroadcaster.dequeue()) as T;
    }
    return this.cpuGroup.broadcastObject(obj, src);
  }

  /** To `dst` (rankInGroup), by default the next rank. Shape travels first. */
  async send(t: tf.Tensor, dst = (this.rankInGroup + 1) % this.worldSize): Promise<void> {
    const data = await this.dataOf(t, 'send');
    await this.deviceGroup.send(Int32Array.from(t.shape), dst);
    await this.deviceGroup.send(data, dst);
  }

  /** From `src` (rankInGroup), by default the previous rank. */
  async recv(src = (this.rankInGroup - 1 + this.worldSize) % this.worldSize): Promise<tf.Tensor> {
    const shape = Array.from(await this.deviceGroup.recv(src));
    return this.tensorFrom(await this.deviceGroup.recv(src), shape, undefined, 'recv');
  }

  /** vLLM's send_tensor_dict: metadata (keys, dtypes, shapes, plain values) first, then each tensor. */
  async sendTensorDict(d: TensorDict, dst = (this.rankInGroup + 1) % this.worldSize): Promise<void> {
    const meta: DictMeta[] = [];
    const tensors: tf.Tensor[] = [];
    for (const [k, v] of Object.entries(d)) {
      if (isTensor(v)) {
        meta.push({ k, dtype: checkDtype(v.dtype, `[${this.uniqueName}] sendTensorDict '${k}'`), shape: v.shape });
        tensors.push(v);
      } else if (v === null || typeof v === 'number' || typeof v === 'string') {
        meta.push({ k, v });
      } else {
        throw new WeftError(`[${this.uniqueName}] sendTensorDict: '${k}' is a ${typeof v}; values must be tensors, numbers, strings or null`);
      }
    }
    await this.cpuGroup.send(packJson(meta), dst);
    for (const t of tensors) await this.deviceGroup.send(await this.dataOf(t, 'sendTensorDict'), dst);
  }

  async recvTensorDict(src = (this.rankInGroup - 1 + this.worldSize) % this.worldSize): Promise<TensorDict> {
    const packed = await this.cpuGroup.recv(src);
    if (!(packed instanceof Int32Array)) throw new WeftError(`[${this.uniqueName}] recvTensorDict: expected metadata from rank ${this.ranks[src]}, got tensor data`);
    const meta = unpackJson(packed) as DictMeta[];
    const out: TensorDict = {};
    for (const m of meta) {
      out[m.k] = 'shape' in m ? this.tensorFrom(await this.deviceGroup.recv(src), m.shape, m.dtype, `recvTensorDict '${m.k}'`) : m.v;
    }
    return out;
  }

  /** chunks[j] goes to rank j; result[i] came from rank i. First dims may differ, trailing dims and dtype may not. */
  async allToAll(chunks: tf.Tensor[]): Promise<tf.Tensor[]> {
    if (chunks.length !== this.worldSize) {
      throw new WeftError(`[${this.uniqueName}] allToAll needs ${this.worldSize} chunks (one per rank), got ${chunks.length}`);
    }
    if (this.worldSize === 1) return chunks;
    const first = chunks[0]!;
    const trailing = first.shape.slice(1);
    for (const c of chunks) {
      if (c.rank !== first.rank || c.shape.slice(1).some((s, i) => s !== trailing[i]) || c.dtype !== first.dtype) {
        throw new WeftError(
          `[${this.uniqueName}] allToAll chunks must share trailing dims and dtype: [${c.shape.join(', ')}] ${c.dtype} vs [${first.shape.join(', ')}] ${first.dtype}`,
        );
      }
    }
    const datas: CommArray[] = [];
    for (const c of chunks) datas.push(await this.dataOf(c, 'allToAll'));
    const got = await this.deviceGroup.allToAll(datas);
    const row = trailing.reduce((a, b) => a * b, 1);
    return got.map((a, i) => {
      if (row === 0 ? a.length !== 0 : a.length % row !== 0) {
        throw new WeftError(`[${this.uniqueName}] allToAll: ${a.length} elements from rank ${this.ranks[i]} do not fill rows of [${trailing.join(', ')}]`);
      }
      return this.tensorFrom(a, [row === 0 ? 0 : a.length / row, ...trailing], undefined, 'allToAll');
    });
  }

  /** Always on the CPU group, as vLLM. */
  async barrier(): Promise<void> {
    await this.cpuGroup.barrier();
  }

  private async dataOf(t: tf.Tensor, op: string): Promise<CommArray> {
    checkDtype(t.dtype, `[${this.uniqueName}] ${op}`);
    const data = await t.data();
    if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) {
      throw new WeftError(`[${this.uniqueName}] ${op}: the backend returned ${data.constructor.name} for a ${t.dtype} tensor`);
    }
    return data;
  }

  private fromGathered(gathered: CommArray, shape: number[], d: number, dtype: tf.DataType): tf.Tensor {
    const ws = this.worldSize;
    const { outer, inner } = splitAt(shape, d);
    const outShape = [...shape];
    outShape[d] = shape[d]! * ws;
    return tf.tensor(rankAxisToDim(gathered, ws, outer, inner), outShape, dtype);
  }

  private tensorFrom(data: CommArray, shape: number[], dtype: Dtype | undefined, op: string): tf.Tensor {
    const got = dtypeOfArray(data);
    if (dtype !== undefined && got !== dtype) throw new WeftError(`[${this.uniqueName}] ${op}: expected ${dtype} data, got ${got}`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new WeftError(`[${this.uniqueName}] ${op}: ${data.length} elements do not fit shape [${shape.join(', ')}]`);
    return tf.tensor(data, shape, got);
  }
}

function isTensor(v: unknown): v is tf.Tensor {
  return typeof v === 'object' && v !== null && 'dataId' in v && 'shape' in v && 'dtype' in v;
}

function checkDtype(dtype: string, what: string): Dtype {
  if (dtype !== 'float32' && dtype !== 'int32') throw new WeftError(`${what}: dtype ${dtype} is not supported (float32 and int32 are)`);
  return dtype;
}

function dtypeOfArray(a: CommArray): Dtype {
  return a instanceof Int32Array ? 'int32' : 'float32';
}

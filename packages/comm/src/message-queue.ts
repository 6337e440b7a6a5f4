/**
 * vLLM's shm_broadcast.MessageQueue: one writer, n readers, a ring of
 * maxChunks × maxChunkBytes in a SharedArrayBuffer. Per chunk: a written flag
 * and one read flag per reader. The writer takes a chunk only when it was
 * never written or every reader has read it, clears the read flags, and only
 * then sets written (the other order lets a reader take an old chunk for new).
 * A message larger than a chunk continues in the next chunks (each chunk says
 * which part it is), so anything arrives whole. Payloads: JSON values, or raw
 * Uint8Array / Float32Array / Int32Array.
 */
import { isMainThread } from 'node:worker_threads';
import { CollectiveTimeoutError, WeftError } from '@weft/core';
import { decodeJson, encodeJson } from './codec.js';
import { bump, deadlineAfter, waitAsyncUntil, waitSync } from './wait.js';

const W_SEQ = 0; // bumped by the writer: readers sleep here
const R_SEQ = 1; // bumped by readers: the writer sleeps here
const CLOSED = 2;
const HEAD_WORDS = 4;
const CHUNK_HEADER = 16; // kind, bytes in this chunk, total bytes, part number

const Kind = { json: 0, u8: 1, f32: 2, i32: 3 } as const;

export interface MessageQueueOptions {
  nReaders: number;
  /** Default 8. */
  maxChunks?: number;
  /** Default 1 MiB; larger messages span several chunks. */
  maxChunkBytes?: number;
  /** Shows up in errors: 'driver', 'tp:0 mq'. */
  name: string;
  /** How errors name reader i (default `reader i`), e.g. 'rank 3'. */
  readerLabels?: string[];
}

/** What another thread needs to attach: plain data and SharedArrayBuffers. */
export interface MessageQueueHandle {
  name: string;
  nReaders: number;
  maxChunks: number;
  maxChunkBytes: number;
  readerLabels: string[];
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

export interface AttachOptions {
  /** Blocking Atomics.wait (workers) or Atomics.waitAsync (main thread, or an idle worker that must keep its event loop). Default: blocking off the main thread. */
  blocking?: boolean;
  /** Default timeout of enqueue/dequeue; default 60 000 ms. */
  timeoutMs?: number;
}

/** The queue was closed while a reader waited, or a writer wrote after close. */
export class MessageQueueClosedError extends WeftError {
  override name = 'MessageQueueClosedError';
}

export class MessageQueue {
  private readonly ctrl: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly heads: Int32Array;
  private readonly flagsPerChunk: number;
  private readonly blocking: boolean;
  private readonly timeoutMs: number;
  /** Next chunk this side touches; all sides walk the ring in the same order. */
  private next = 0;

  private constructor(
    private readonly h: MessageQueueHandle,
    /** 'writer' or the reader index. */
    readonly role: 'writer' | number,
    opts: AttachOptions = {},
  ) {
    this.ctrl = new Int32Array(h.ctrl);
    this.flagsPerChunk = 1 + h.nReaders;
    this.bytes = new Uint8Array(h.data);
    this.heads = new Int32Array(h.data);
    this.blocking = opts.blocking ?? !isMainThread;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    if (role !== 'writer' && (!Number.isInteger(role) || role < 0 || role >= h.nReaders)) {
      throw new WeftError(`MessageQueue '${h.name}': reader index ${String(role)} out of range (${h.nReaders} readers)`);
    }
  }

  /** Allocate a queue; the returned instance is its writer. */
  static create(opts: MessageQueueOptions & AttachOptions): MessageQueue {
    const maxChunks = opts.maxChunks ?? 8;
    const maxChunkBytes = opts.maxChunkBytes ?? 1 << 20;
    if (!Number.isInteger(opts.nReaders) || opts.nReaders < 1) throw new WeftError(`MessageQueue '${opts.name}' needs at least one reader`);
    if (!Number.isInteger(maxChunks) || maxChunks < 1) throw new WeftError(`MessageQueue '${opts.name}': maxChunks must be ≥ 1`);
    if (!Number.isInteger(maxChunkBytes) || maxChunkBytes < CHUNK_HEADER + 16 || maxChunkBytes % 4 !== 0) {
      throw new WeftError(`MessageQueue '${opts.name}': maxChunkBytes must be a multiple of 4 and ≥ ${CHUNK_HEADER + 16}`);
    }
    const h: MessageQueueHandle = {
      name: opts.name,
      nReaders: opts.nReaders,
      maxChunks,
      maxChunkBytes,
      readerLabels: opts.readerLabels ?? Array.from({ length: opts.nReaders }, (_, i) => `reader ${i}`),
      ctrl: new SharedArrayBuffer((HEAD_WORDS + maxChunks * (1 + opts.nReaders)) * 4),
      data: new SharedArrayBuffer(maxChunks * maxChunkBytes),
    };
    return new MessageQueue(h, 'writer', opts);
  }

  static attach(handle: MessageQueueHandle, role: number | 'writer', opts?: AttachOptions): MessageQueue {
    return new MessageQueue(handle, role, opts);
  }

  /** Transferable description (SharedArrayBuffers are shared, not copied). */
  handle(): MessageQueueHandle {
    return this.h;
  }

  get name(): string {
    return this.h.name;
  }

  get closed(): boolean {
    return Atomics.load(this.ctrl, CLOSED) !== 0;
  }

  /** Readers waiting (now or later) stop with MessageQueueClosedError once the ring is drained. */
  close(): void {
    Atomics.store(this.ctrl, CLOSED, 1);
    bump(this.ctrl, W_SEQ);
    bump(this.ctrl, R_SEQ);
  }

  private written(c: number): number {
    return HEAD_WORDS + c * this.flagsPerChunk;
  }

  private chunkFree(c: number): boolean {
    const w = this.written(c);
    if (Atomics.load(this.ctrl, w) === 0) return true;
    for (let r = 1; r <= this.h.nReaders; r++) if (Atomics.load(this.ctrl, w + r) === 0) return false;
    return true;
  }

  private async waitFor(word: number, ready: () => boolean, deadline: number): Promise<boolean> {
    return this.blocking ? waitSync(this.ctrl, word, ready, deadline) : waitAsyncUntil(this.ctrl, word, ready, deadline);
  }

  async enqueue(obj: unknown, timeoutMs: number = this.timeoutMs): Promise<void> {
    if (this.role !== 'writer') throw new WeftError(`MessageQueue '${this.h.name}': reader ${this.role} cannot enqueue`);
    if (this.closed) throw new MessageQueueClosedError(`MessageQueue '${this.h.name}' is closed`);
    const { kind, bytes } = encodePayload(obj);
    const room = this.h.maxChunkBytes - CHUNK_HEADER;
    let off = 0;
    let part = 0;
    do {
      const c = this.next;
      const ok = await this.waitFor(R_SEQ, () => this.chunkFree(c) || this.closed, deadlineAfter(timeoutMs));
      if (this.closed) throw new MessageQueueClosedError(`MessageQueue '${this.h.name}' was closed while enqueueing`);
      if (!ok) {
        const w = this.written(c);
        const stuck: string[] = [];
        for (let r = 0; r < this.h.nReaders; r++) if (Atomics.load(this.ctrl, w + 1 + r) === 0) stuck.push(this.h.readerLabels[r] ?? `reader ${r}`);
        throw new CollectiveTimeoutError(
          `MessageQueue '${this.h.name}' enqueue timed out after ${timeoutMs} ms: no free chunk of ${this.h.maxChunks}; ` +
            `${stuck.join(', ')} ${stuck.length === 1 ? 'has' : 'have'} not read chunk ${c}`,
        );
      }
      const w = this.written(c);
      Atomics.store(this.ctrl, w, 0);
      const n = Math.min(room, bytes.length - off);
      const base = c * this.h.maxChunkBytes;
      const hw = base / 4;
      this.heads[hw] = kind;
      this.heads[hw + 1] = n;
      this.heads[hw + 2] = bytes.length;
      this.heads[hw + 3] = part;
      this.bytes.set(bytes.subarray(off, off + n), base + CHUNK_HEADER);
      // vLLM's order: clear every read flag, then mark written.
      for (let r = 1; r <= this.h.nReaders; r++) Atomics.store(this.ctrl, w + r, 0);
      Atomics.store(this.ctrl, w, 1);
      bump(this.ctrl, W_SEQ);
      this.next = (c + 1) % this.h.maxChunks;
      off += n;
      part++;
    } while (off < bytes.length);
  }

  async dequeue(timeoutMs: number = this.timeoutMs): Promise<unknown> {
    if (this.role === 'writer') throw new WeftError(`MessageQueue '${this.h.name}': the writer cannot dequeue`);
    const flag = 1 + this.role;
    let out: Uint8Array | null = null;
    let kind = 0;
    let off = 0;
    let part = 0;
    do {
      const c = this.next;
      const w = this.written(c);
      const available = () => Atomics.load(this.ctrl, w) === 1 && Atomics.load(this.ctrl, w + flag) === 0;
      const ok = await this.waitFor(W_SEQ, () => available() || this.closed, deadlineAfter(timeoutMs));
      if (!available()) {
        if (this.closed) throw new MessageQueueClosedError(`MessageQueue '${this.h.name}' was closed`);
        if (!ok) {
          throw new CollectiveTimeoutError(
            `MessageQueue '${this.h.name}' dequeue timed out after ${timeoutMs} ms on ${this.h.readerLabels[this.role] ?? `reader ${this.role}`}: ` +
              (part === 0 ? 'the writer sent nothing' : `the writer stopped after part ${part} of a message`),
          );
        }
      }
      const base = c * this.h.maxChunkBytes;
      const hw = base / 4;
      const n = this.heads[hw + 1]!;
      const total = this.heads[hw + 2]!;
      if (this.heads[hw + 3] !== part) throw new WeftError(`MessageQueue '${this.h.name}': chunk ${c} holds part ${this.heads[hw + 3]}, expected ${part}`);
      if (out === null) {
        kind = this.heads[hw]!;
        out = new Uint8Array(total);
      }
      out.set(this.bytes.subarray(base + CHUNK_HEADER, base + CHUNK_HEADER + n), off);
      Atomics.store(this.ctrl, w + flag, 1);
      bump(this.ctrl, R_SEQ);
      this.next = (c + 1) % this.h.maxChunks;
      off += n;
      part++;
    } while (off < out.length);
    return decodePayload(kind, out);
  }
}

function encodePayload(obj: unknown): { kind: number; bytes: Uint8Array } {
  if (obj instanceof Float32Array) return { kind: Kind.f32, bytes: new Uint8Array(obj.buffer, obj.byteOffset, obj.byteLength) };
  if (obj instanceof Int32Array) return { kind: Kind.i32, bytes: new Uint8Array(obj.buffer, obj.byteOffset, obj.byteLength) };
  if (obj instanceof Uint8Array) return { kind: Kind.u8, bytes: obj };
  return { kind: Kind.json, bytes: encodeJson(obj) };
}

function decodePayload(kind: number, bytes: Uint8Array): unknown {
  switch (kind) {
    case Kind.json:
      return decodeJson(bytes);
    case Kind.u8:
      return bytes;
    case Kind.f32:
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    case Kind.i32:
      return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    default:
      throw new WeftError(`MessageQueue: corrupt payload kind ${kind}`);
  }
}

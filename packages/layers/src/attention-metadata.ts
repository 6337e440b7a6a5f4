/**
 * What one step's flattened batch holds, vLLM style: the new tokens of several
 * sequences concatenated into `T` rows. Sequence s owns rows
 * `[start, start + queryLen)`. Their absolute positions are
 * `contextLen .. contextLen + queryLen − 1`, where `contextLen` counts the
 * tokens already in its KV cache. A prefill has contextLen 0; a decode has
 * queryLen 1; queryLen > 1 with contextLen > 0 is a chunk continuing a prompt.
 *
 * With a paged KV cache each sequence's `blockTable` lists the blocks of
 * `blockSize` tokens that hold positions `0 .. contextLen + queryLen − 1`
 * (vLLM's block table; blocks may be shared between sequences, e.g. a cached
 * prefix). Position p lives in slot
 * `blockTable[⌊p / blockSize⌋] · blockSize + p mod blockSize`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '@weft/core';

export interface SeqMetadata {
  seqId: number;
  /** First row of this sequence among the T flattened tokens. */
  start: number;
  /** New tokens of this sequence in this step. */
  queryLen: number;
  /** Tokens already in this sequence's cache before this step (prefix-cache hits included). */
  contextLen: number;
  /** Block ids covering positions `0 .. contextLen + queryLen − 1` (empty without a cache). */
  blockTable: number[];
}

export interface AttentionMetadata {
  seqs: SeqMetadata[];
  /** Tokens per KV-cache block. */
  blockSize: number;
}

/** Block size when none is given (vLLM's default). */
export const DEFAULT_BLOCK_SIZE = 16;

export interface SeqInput {
  seqId: number;
  queryLen: number;
  /** Default 0 (prefill). */
  contextLen?: number;
  /** Default [] (no cache). */
  blockTable?: number[];
}

/** Lay sequences out back to back, in the order given. */
export function buildAttentionMetadata(seqs: ReadonlyArray<SeqInput>, blockSize = DEFAULT_BLOCK_SIZE): AttentionMetadata {
  let start = 0;
  const out: SeqMetadata[] = [];
  for (const s of seqs) {
    const contextLen = s.contextLen ?? 0;
    out.push({ seqId: s.seqId, start, queryLen: s.queryLen, contextLen, blockTable: s.blockTable ?? [] });
    start += s.queryLen;
  }
  const meta = { seqs: out, blockSize };
  validateMetadata(meta);
  return meta;
}

/** Total new tokens T. */
export function numTokens(meta: AttentionMetadata): number {
  return meta.seqs.reduce((n, s) => n + s.queryLen, 0);
}

/** The absolute position of every row: `contextLen + i` for query i of each sequence. */
export function positionsOf(meta: AttentionMetadata): Int32Array {
  const out = new Int32Array(numTokens(meta));
  for (const s of meta.seqs) for (let i = 0; i < s.queryLen; i++) out[s.start + i] = s.contextLen + i;
  return out;
}

/** One past the largest position any sequence reaches in this step (what the rotary cache must cover). */
export function positionsEnd(meta: AttentionMetadata): number {
  return meta.seqs.reduce((m, s) => Math.max(m, s.contextLen + s.queryLen), 0);
}

/** `positionsOf` as an int32 `[T]` tensor, ready for the rotary embedding. */
export function positionsTensor(meta: AttentionMetadata): tf.Tensor1D {
  return tf.tensor1d(positionsOf(meta), 'int32');
}

/**
 * Throws unless the sequences tile rows `[0, T)` exactly, in order, with distinct
 * ids and valid lengths. If `expectedTokens` is given, T must equal it.
 */
export function validateMetadata(meta: AttentionMetadata, expectedTokens?: number): void {
  if (!Number.isInteger(meta.blockSize) || meta.blockSize < 1) throw new ConfigError(`attention metadata: blockSize ${meta.blockSize} must be a positive integer`);
  const ids = new Set<number>();
  let next = 0;
  for (const s of meta.seqs) {
    const where = `attention metadata: sequence ${s.seqId}`;
    if (ids.has(s.seqId)) throw new ConfigError(`${where} appears twice in one step`);
    ids.add(s.seqId);
    if (!Number.isInteger(s.queryLen) || s.queryLen < 1) throw new ConfigError(`${where} has queryLen ${s.queryLen} (must be ≥ 1)`);
    if (!Number.isInteger(s.contextLen) || s.contextLen < 0) throw new ConfigError(`${where} has contextLen ${s.contextLen} (must be ≥ 0)`);
    if (s.start !== next) throw new ConfigError(`${where} starts at row ${s.start}, expected ${next} (sequences must be contiguous, in order)`);
    next += s.queryLen;
  }
  if (expectedTokens !== undefined && next !== expectedTokens) {
    throw new ConfigError(`attention metadata covers ${next} tokens but the batch has ${expectedTokens}`);
  }
}

/**
 * Throws unless every sequence's block table covers its positions
 * `0 .. contextLen + queryLen − 1` with ids in `[0, numBlocks)`. With a
 * sliding window, blocks wholly before the first query's window are never
 * read and may be anything (the engine frees them: −1).
 */
export function validateBlockTables(meta: AttentionMetadata, numBlocks: number, slidingWindow: number | null = null): void {
  for (const s of meta.seqs) {
    const firstRead = slidingWindow === null ? 0 : Math.floor(Math.max(0, s.contextLen - slidingWindow + 1) / meta.blockSize);
    const need = Math.ceil((s.contextLen + s.queryLen) / meta.blockSize);
    if (s.blockTable.length < need) {
      throw new ConfigError(
        `attention metadata: sequence ${s.seqId} has ${s.contextLen + s.queryLen} tokens, which need ${need} blocks of ${meta.blockSize}, ` +
          `but its block table has ${s.blockTable.length}`,
      );
    }
    for (let b = firstRead; b < need; b++) {
      const id = s.blockTable[b]!;
      if (!Number.isInteger(id) || id < 0 || id >= numBlocks) {
        throw new ConfigError(`attention metadata: sequence ${s.seqId} block ${b} is ${id}, outside the pool of ${numBlocks} blocks`);
      }
    }
  }
}

/** The cache slot of every new token (vLLM's slot_mapping): `[T]`, row order. */
export function slotMapping(meta: AttentionMetadata): Int32Array {
  const out = new Int32Array(numTokens(meta));
  const bs = meta.blockSize;
  for (const s of meta.seqs) {
    for (let i = 0; i < s.queryLen; i++) {
      const p = s.contextLen + i;
      const b = Math.floor(p / bs);
      out[s.start + i] = s.blockTable[b]! * bs + (p - b * bs);
    }
  }
  return out;
}

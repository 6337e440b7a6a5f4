/**
 * What one step's flattened batch holds, vLLM style: the new tokens of several
 * sequences concatenated into `T` rows. Sequence s owns rows
 * `[start, start + queryLen)`. Their absolute positions are
 * `contextLen .. contextLen + queryLen − 1`, where `contextLen` counts the
 * tokens already in its KV cache. A prefill has contextLen 0; a decode has
 * queryLen 1.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '@weft/core';

export interface SeqMetadata {
  seqId: number;
  /** First row of this sequence among the T flattened tokens. */
  start: number;
  /** New tokens of this sequence in this step. */
  queryLen: number;
  /** Tokens already in this sequence's cache before this step. */
  contextLen: number;
}

export interface AttentionMetadata {
  seqs: SeqMetadata[];
}

/** Lay sequences out back to back, in the order given. `contextLen` defaults to 0 (prefill). */
export function buildAttentionMetadata(seqs: ReadonlyArray<{ seqId: number; queryLen: number; contextLen?: number }>): AttentionMetadata {
  let start = 0;
  const out: SeqMetadata[] = [];
  for (const s of seqs) {
    const contextLen = s.contextLen ?? 0;
    out.push({ seqId: s.seqId, start, queryLen: s.queryLen, contextLen });
    start += s.queryLen;
  }
  const meta = { seqs: out };
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

/** `positionsOf` as an int32 `[T]` tensor, ready for the rotary embedding. */
export function positionsTensor(meta: AttentionMetadata): tf.Tensor1D {
  return tf.tensor1d(positionsOf(meta), 'int32');
}

/**
 * Throws unless the sequences tile rows `[0, T)` exactly, in order, with distinct
 * ids and valid lengths. If `expectedTokens` is given, T must equal it.
 */
export function validateMetadata(meta: AttentionMetadata, expectedTokens?: number): void {
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

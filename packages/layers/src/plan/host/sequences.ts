/** A step's sequences as @weft/cpu-kernels' paged attention takes them: `ATTN_SEQ_FIELDS` int32 each, block tables back to back. */
import { ATTN_SEQ_FIELDS } from '@weft/cpu-kernels';
import type { SeqMetadata } from '../../attention-metadata.js';

export function packSequences(seqs: readonly SeqMetadata[]): { seqTable: Int32Array; blockTables: Int32Array } {
  const seqTable = new Int32Array(seqs.length * ATTN_SEQ_FIELDS);
  const blockTables = new Int32Array(seqs.reduce((n, s) => n + s.blockTable.length, 0));
  let at = 0;
  seqs.forEach((s, i) => {
    seqTable.set([s.seqId, s.start, s.queryLen, s.contextLen, at], i * ATTN_SEQ_FIELDS);
    blockTables.set(s.blockTable, at);
    at += s.blockTable.length;
  });
  return { seqTable, blockTables };
}

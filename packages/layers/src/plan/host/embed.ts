/** The host executor's `embed` op: the rows of this rank's vocab shard (fp32 or bf16), zero rows for other ids. */
import { WeftError } from '@weft/core';
import type { HostOpImpl } from './context.js';

export const hostEmbed: HostOpImpl<'embed'> = (op, up) => {
  const table = up.matrix(op.table);
  if (table.format !== 'fp32' && table.format !== 'bf16') throw new WeftError(`plan embed ${op.table.name}: a ${table.format} table has no host lookup (embeddings stay fp32 or bf16)`);
  if (op.vocabEnd - op.vocabStart !== table.n || op.out.width !== table.k) {
    throw new WeftError(`plan embed ${op.table.name}: vocab [${op.vocabStart}, ${op.vocabEnd}) × ${op.out.width} does not fit the table [${table.n}, ${table.k}]`);
  }
  return (s) => up.kernels.embed(table, s.input.tokenIds, op.vocabStart, op.scale, s.view({ act: op.out, col: 0, width: op.out.width }));
};

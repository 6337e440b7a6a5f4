/** The host executor's `linear` op: one kernel call through the weight's format, bias and accumulate included. */
import { WeftError } from '@weft/core';
import type { HostOpImpl } from './context.js';

export const hostLinear: HostOpImpl<'linear'> = (op, up) => {
  const w = up.matrix(op.weight);
  const bias = op.bias ? up.vector(op.bias) : null;
  if (op.x.width !== w.k || op.out.width !== w.n || (bias && bias.length !== w.n)) {
    throw new WeftError(`plan linear ${op.weight.name}: views [${op.x.width}] → [${op.out.width}] do not fit the weight [${w.n}, ${w.k}]${bias ? ` (bias ${bias.length})` : ''}`);
  }
  return (s) => up.kernels.linear(s.view(op.x), s.rowsOf(op.x.act), w, s.view(op.out), op.accumulate, bias);
};

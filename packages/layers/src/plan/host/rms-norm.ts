/** The host executor's `rmsNorm` op (fused residual add, per-head groups); `weightOffset` is added to the weight once, in fp32. */
import { WeftError } from '@weft/core';
import type { HostOpImpl } from './context.js';

export const hostRmsNorm: HostOpImpl<'rmsNorm'> = (op, up) => {
  const w = up.vector(op.weight);
  const weight = op.weightOffset === 0 ? w : w.map((v) => v + op.weightOffset);
  const { width } = op.x;
  if (weight.length !== op.groupSize || width % op.groupSize !== 0 || op.out.width !== width || (op.residual && op.residual.width !== width)) {
    throw new WeftError(`plan rmsNorm ${op.weight.name}: weight of ${weight.length}, groups of ${op.groupSize}, views ${width} / ${op.out.width} / ${op.residual?.width ?? '-'} do not fit`);
  }
  return (s) =>
    up.kernels.rmsNorm(s.view(op.x), s.view(op.out), op.residual ? s.view(op.residual) : null, op.residualInit, s.rowsOf(op.x.act), width, op.groupSize, weight, op.eps);
};

/** The host executor's small ops: rotary, gated activation, add, soft cap, and the sampled rows' gather. */
import { WeftError } from '@weft/core';
import type { HostOpImpl } from './context.js';

export const hostRotary: HostOpImpl<'rotary'> = (op, up) => {
  const { headSize, rotaryDim, isNeoxStyle } = op.rope;
  if (op.heads * headSize > op.x.width) throw new WeftError(`plan rotary on ${op.x.act.name}: ${op.heads} heads of ${headSize} do not fit ${op.x.width} columns`);
  return (s) => {
    const [cos, sin] = s.cosSin(op.rope);
    up.kernels.rotary(s.view(op.x), s.tokens, op.heads, headSize, rotaryDim, isNeoxStyle, cos, sin);
  };
};

export const hostGatedAct: HostOpImpl<'gatedAct'> = (op, up) => {
  const half = op.x.width / 2;
  if (op.out.width !== half || !Number.isInteger(half)) throw new WeftError(`plan gatedAct: ${op.x.width} columns do not halve into ${op.out.width}`);
  return (s) => up.kernels.gatedAct(op.act, s.view(op.x), s.view(op.out), s.rowsOf(op.x.act), half);
};

export const hostAdd: HostOpImpl<'add'> = (op, up) => {
  if (op.a.width !== op.b.width || op.out.width !== op.a.width) throw new WeftError(`plan add: widths ${op.a.width} + ${op.b.width} → ${op.out.width}`);
  return (s) => up.kernels.add(s.view(op.a), s.view(op.b), s.view(op.out), s.rowsOf(op.out.act), op.out.width);
};

export const hostSoftcap: HostOpImpl<'softcap'> = (op, up) => (s) => up.kernels.softcap(s.view(op.x), s.rowsOf(op.x.act), op.x.width, op.cap);

export const hostGatherSampled: HostOpImpl<'gatherSampled'> = (op) => {
  if (op.out.width !== op.x.width) throw new WeftError(`plan gatherSampled: ${op.x.width} columns into ${op.out.width}`);
  return (s) => {
    const rows = s.input.sampledRows;
    const x = s.buf(op.x.act), out = s.buf(op.out.act);
    const w = op.x.width;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (!(r >= 0 && r < s.tokens)) throw new WeftError(`plan step: sampled row ${r} is outside the step's ${s.tokens} rows`);
      const from = r * op.x.act.width + op.x.col;
      out.set(x.subarray(from, from + w), i * op.out.act.width + op.out.col);
    }
  };
};

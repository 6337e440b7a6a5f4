/**
 * The host executor's plan boundaries: `allReduce` and `gatherColumns` on the
 * op's group through plan/collectives.ts (a contiguous copy only when the
 * view is a part of its activation's columns).
 */
import type { HostOpImpl, HostStep } from './context.js';
import { allReduceHost, gatherColumnsHost } from '../collectives.js';
import type { ActView } from '../ops.js';

/** The view's rows as one `[rows, width]` array: the buffer itself when the view is every column. */
function contiguous(s: HostStep, v: ActView): Float32Array {
  const rows = s.rowsOf(v.act);
  const buf = s.buf(v.act);
  if (v.col === 0 && v.width === v.act.width) return buf.subarray(0, rows * v.width);
  const out = new Float32Array(rows * v.width);
  for (let t = 0; t < rows; t++) out.set(buf.subarray(t * v.act.width + v.col, t * v.act.width + v.col + v.width), t * v.width);
  return out;
}

function scatter(s: HostStep, v: ActView, src: Float32Array): void {
  const buf = s.buf(v.act);
  if (src.buffer === buf.buffer && src.byteOffset === buf.byteOffset) return;
  for (let t = 0; t < s.rowsOf(v.act); t++) buf.set(src.subarray(t * v.width, (t + 1) * v.width), t * v.act.width + v.col);
}

export const hostAllReduce: HostOpImpl<'allReduce'> = (op) => async (s) => {
  const x = contiguous(s, op.x);
  await allReduceHost(op.group, x, s.rowsOf(op.x.act), op.x.width);
  scatter(s, op.x, x);
};

export const hostGatherColumns: HostOpImpl<'gatherColumns'> = (op) => async (s) => {
  const full = await gatherColumnsHost(op.group, contiguous(s, op.x), s.rowsOf(op.x.act), op.x.width);
  if (full) scatter(s, op.out, full);
};

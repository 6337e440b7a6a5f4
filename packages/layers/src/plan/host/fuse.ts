/**
 * The host executor's fusions, made once when it is built: the plan stays the layers' record; the executor runs
 * fewer kernel calls for it. A fused op computes exactly what the ops it replaces compute, element for element
 * (outputs bit-equal).
 * - Two rotary ops on side-by-side heads of one activation with one rope (a fused qkv's q heads, then its k
 *   heads): one rotary over both.
 */
import type { PlanOp, RotaryOp } from '../ops.js';

/** A step's unit of work: `op` is run; it stands for `count` plan ops from index `at` (one, unless fused). */
export interface HostRunOp {
  readonly op: PlanOp;
  readonly at: number;
  readonly count: number;
}

/** `a` then `b` as one rotary, or null when they are not side by side on one activation with one rope. */
export function fuseRotary(a: RotaryOp, b: RotaryOp): RotaryOp | null {
  const size = a.rope.headSize;
  if (b.rope !== a.rope || b.x.act !== a.x.act || a.x.width !== a.heads * size || b.x.width !== b.heads * size) return null;
  if (b.x.col !== a.x.col + a.x.width) return null;
  return { kind: 'rotary', rope: a.rope, heads: a.heads + b.heads, x: { act: a.x.act, col: a.x.col, width: a.x.width + b.x.width } };
}

export function fusePlanOps(ops: readonly PlanOp[]): HostRunOp[] {
  const out: HostRunOp[] = [];
  ops.forEach((op, at) => {
    const last = out[out.length - 1];
    const fused = op.kind === 'rotary' && last?.op.kind === 'rotary' ? fuseRotary(last.op, op) : null;
    if (fused) out[out.length - 1] = { op: fused, at: last!.at, count: last!.count + 1 };
    else out.push({ op, at, count: 1 });
  });
  return out;
}

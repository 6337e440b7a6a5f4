/**
 * Rank entry of bench:gpu's collective stage (gpu-collectives.ts): each rank owns a WebGPU device and runs
 * small device plans whose only difference is the collective boundaries, so a step's extra time is theirs:
 * - `allReduce`: K × (add → all-reduce of `[T, width]`) against the same K adds with no collective;
 * - `gatherColumns`: one vocab-parallel logits gather (`[S, vocab / tp]` per rank → `[S, vocab]` on rank 0)
 *   against the same plan whose logits stay `[S, vocab / tp]`.
 * Every boundary is what the engine's plan pays: the segment's command buffer submitted, the rows read back
 * (GPU → host), the rank's communicator, and one write back (host → GPU).
 */
import type { RankContext } from '@weft/comm';
import { PlanBuilder, requestDevice, view, whole, WebGpuPlanExecutor, type DevicePlan, type PlanAct } from '@weft/layers';
import { median } from './stats.js';

export interface CollectiveCase {
  width: number;
  vocab: number;
  /** Step shapes: T token rows, S sequences (S = T for decode, 1 for a prefill). */
  shapes: { T: number; S: number }[];
  /** All-reduces per step in the `allReduce` plan. */
  k: number;
  reps: number;
}

export interface CollectiveTiming {
  plan: 'allReduce' | 'allReduce-free' | 'gatherColumns' | 'gather-free';
  T: number;
  S: number;
  stepMs: number;
}

function chainPlan(c: CollectiveCase, ctx: RankContext, reduce: boolean): DevicePlan {
  const b = new PlanBuilder();
  const x = b.act('x', c.width);
  let cur: PlanAct = x;
  for (let i = 0; i < c.k; i++) {
    const y = b.act(`y${i}`, c.width);
    b.op({ kind: 'add', a: whole(cur), b: whole(cur), out: whole(y) });
    if (reduce) b.allReduce(whole(y), ctx.state.tp);
    cur = y;
  }
  const s = b.act('s', c.width, 'sampled');
  b.op({ kind: 'gatherSampled', x: whole(cur), out: whole(s) });
  return b.build(c.width, { inHidden: x, logits: s });
}

function gatherPlan(c: CollectiveCase, ctx: RankContext, gather: boolean): DevicePlan {
  const ws = ctx.state.tp.worldSize;
  const part = c.vocab / ws;
  const b = new PlanBuilder();
  const x = b.act('x', part);
  const s = b.act('s', part, 'sampled');
  b.op({ kind: 'gatherSampled', x: whole(x), out: whole(s) });
  if (!gather) return b.build(part, { inHidden: x, logits: s });
  const logits = b.act('logits', c.vocab, 'sampled');
  b.op({ kind: 'gatherColumns', x: view(s, 0, part), out: whole(logits), group: ctx.state.tp });
  return b.build(c.vocab, { inHidden: x, logits });
}

export async function main(ctx: RankContext): Promise<CollectiveTiming[] | null> {
  const c = ctx.args as CollectiveCase;
  const device = await requestDevice();
  const maxRows = Math.max(...c.shapes.map((s) => s.T));
  const maxSeqs = Math.max(...c.shapes.map((s) => s.S));
  const out: CollectiveTiming[] = [];
  const plans: [CollectiveTiming['plan'], DevicePlan, number][] = [
    ['allReduce-free', chainPlan(c, ctx, false), c.width],
    ['allReduce', chainPlan(c, ctx, true), c.width],
    ['gather-free', gatherPlan(c, ctx, false), c.vocab / ctx.state.tp.worldSize],
    ['gatherColumns', gatherPlan(c, ctx, true), c.vocab / ctx.state.tp.worldSize],
  ];
  try {
    for (const [name, plan, inWidth] of plans) {
      const ex = await WebGpuPlanExecutor.create({ plan, device, maxRows, maxSeqs, maxModelLen: maxRows + 16 });
      try {
        await ex.initCaches(Math.max(...c.shapes.map(({ T, S }) => S * Math.ceil(T / S / 16))), 16);
        for (const { T, S } of c.shapes) {
          const perSeq = T / S;
          const nb = Math.ceil(perSeq / 16);
          const input = {
            tokenIds: new Int32Array(T),
            positions: Int32Array.from({ length: T }, (_, i) => i % perSeq),
            seqs: Array.from({ length: S }, (_, s) => ({ seqId: s, start: s * perSeq, queryLen: perSeq, contextLen: 0, blockTable: Array.from({ length: nb }, (_, i) => s * nb + i) })),
            blockSize: 16,
            sampledRows: Int32Array.from({ length: S }, (_, s) => s * perSeq + perSeq - 1),
            hidden: Float32Array.from({ length: T * inWidth }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5),
          };
          for (let r = 0; r < 3; r++) await ex.step(input);
          const times: number[] = [];
          for (let r = 0; r < c.reps; r++) {
            const t = performance.now();
            await ex.step(input);
            times.push(performance.now() - t);
          }
          out.push({ plan: name, T, S, stepMs: +median(times).toFixed(4) });
        }
      } finally {
        ex.dispose();
      }
    }
  } finally {
    device.destroy();
  }
  return ctx.state.tp.rankInGroup === 0 ? out : null;
}

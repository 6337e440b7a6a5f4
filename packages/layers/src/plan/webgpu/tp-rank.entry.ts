/**
 * Rank entry of the executor's tensor-parallel test (webgpu-tp.test.ts): each
 * rank runs its shard of a column-parallel → row-parallel (all-reduce) →
 * vocab-parallel head (gather to rank 0) plan on its own WebGPU device, for
 * two step shapes (GEMV and GEMM rows). Weights come from the same seeds as
 * the dense reference the test computes.
 */
import type { RankContext } from '@weft/comm';
import { LinearWeight } from '../../linear/linear-weight.js';
import { defaultWeightLoader, hostWeight } from '../../parameter.js';
import { UnquantizedLinearMethod } from '../../quantization/linear-method.js';
import { randomHost } from '../../test-entries/random.js';
import { PlanBuilder, whole } from '../builder.js';
import { requestDevice } from './device.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';

export interface TpCase {
  k: number;
  n1: number;
  n2: number;
  vocab: number;
  bf16: boolean;
  /** Rows of each step; the step's sampled rows are its last row and its first. */
  steps: number[];
}

/** Rows `[r0, r0 + rows)` (`dim` 0) or columns (`dim` 1) of a seeded `[n, k]` weight. */
function shard(n: number, k: number, seed: number, dim: 0 | 1, rank: number, ws: number, bf16: boolean): LinearWeight {
  const full = randomHost([n, k], seed, 0.3).data as Float32Array;
  const [rn, rk] = dim === 0 ? [n / ws, k] : [n, k / ws];
  const data = new Float32Array(rn * rk);
  for (let r = 0; r < rn; r++) for (let c = 0; c < rk; c++) data[r * rk + c] = dim === 0 ? full[(rank * rn + r) * k + c]! : full[r * k + rank * rk + c]!;
  const w = new LinearWeight(`w${seed}`, rn, rk, defaultWeightLoader);
  if (bf16) w.useMethod(new UnquantizedLinearMethod('bfloat16'));
  w.load(hostWeight(`w${seed}`, { shape: [rn, rk], dtype: 'float32', data }));
  return w;
}

export async function main(ctx: RankContext): Promise<{ logits: number[][]; greedy: number[][] } | null> {
  const c = ctx.args as TpCase;
  const tp = ctx.state.tp;
  const ws = tp.worldSize;
  const rank = tp.rankInGroup;
  const b = new PlanBuilder();
  const x = b.act('x', c.k);
  const h = b.act('h', c.n1 / ws);
  const z = b.act('z', c.n2);
  const s = b.act('s', c.n2, 'sampled');
  const lr = b.act('logits_part', c.vocab / ws, 'sampled');
  const logits = b.act('logits', c.vocab, 'sampled');
  b.op({ kind: 'linear', x: whole(x), out: whole(h), weight: shard(c.n1, c.k, 1, 0, rank, ws, c.bf16), bias: null, accumulate: false });
  b.op({ kind: 'linear', x: whole(h), out: whole(z), weight: shard(c.n2, c.n1, 2, 1, rank, ws, c.bf16), bias: null, accumulate: false });
  b.allReduce(whole(z), tp);
  b.op({ kind: 'gatherSampled', x: whole(z), out: whole(s) });
  b.op({ kind: 'linear', x: whole(s), out: whole(lr), weight: shard(c.vocab, c.n2, 3, 0, rank, ws, c.bf16), bias: null, accumulate: false });
  b.op({ kind: 'gatherColumns', x: whole(lr), out: whole(logits), group: tp });
  const plan = b.build(c.vocab, { inHidden: x, logits });
  const device = await requestDevice();
  const ex = await WebGpuPlanExecutor.create({ plan, device, maxRows: 64, maxSeqs: 4, maxModelLen: 64 });
  try {
    await ex.initCaches(8, 16);
    const out = { logits: [] as number[][], greedy: [] as number[][] };
    for (const T of c.steps) {
      const r = await ex.step({
        tokenIds: new Int32Array(T),
        positions: Int32Array.from({ length: T }, (_, i) => i),
        seqs: [{ seqId: 0, start: 0, queryLen: T, contextLen: 0, blockTable: [0, 1, 2, 3] }],
        blockSize: 16,
        sampledRows: Int32Array.from([T - 1, 0]),
        hidden: randomHost([T, c.k], 100 + T).data as Float32Array,
      });
      if (!r.logits !== !r.greedy) throw new Error('logits and greedy come together');
      // Only tp rank 0 holds the gathered logits; every rank runs every step (the collectives need both).
      if (r.logits) {
        out.logits.push(Array.from(r.logits));
        out.greedy.push(Array.from(r.greedy!));
      }
    }
    return out.logits.length ? out : null;
  } finally {
    ex.dispose();
    device.destroy();
  }
}

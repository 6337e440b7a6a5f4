/** Rank side of bench:comm's shared-memory allReduce: time allReduce over the world group (worker threads). */
import type { RankContext } from '@weft/comm';

export interface CommRankArgs {
  sizes: number[];
  iters: number[];
}

/** Per size: this rank's mean seconds per allReduce. */
export async function main(ctx: RankContext): Promise<number[]> {
  const { sizes, iters } = ctx.args as CommRankArgs;
  const comm = ctx.state.world.cpuGroup;
  const out: number[] = [];
  for (let i = 0; i < sizes.length; i++) {
    const n = Math.max(1, Math.floor(sizes[i]! / 4));
    const data = new Float32Array(n).fill(ctx.rank + 1);
    for (let w = 0; w < 2; w++) await comm.allReduce(data);
    await comm.barrier();
    const t0 = performance.now();
    for (let k = 0; k < iters[i]!; k++) await comm.allReduce(data);
    const t1 = performance.now();
    out.push((t1 - t0) / 1000 / iters[i]!);
  }
  return out;
}

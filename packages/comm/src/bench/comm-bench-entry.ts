/** Rank side of the comm benchmark: time allReduce over the world group's transport. */
import type { RankContext } from '../launcher.js';

export interface BenchArgs {
  sizes: number[];
  iters: number[];
}

/** Per size: this rank's mean seconds per allReduce. */
export async function main(ctx: RankContext): Promise<number[]> {
  const { sizes, iters } = ctx.args as BenchArgs;
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

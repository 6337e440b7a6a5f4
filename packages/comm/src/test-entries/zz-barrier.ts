import type { RankContext } from '../launcher.js';
export async function main(ctx: RankContext) {
  const c = ctx.state.tp.cpuGroup;
  for (let i = 0; i < 100; i++) await c.barrier();
  const t0 = performance.now();
  for (let i = 0; i < 2000; i++) await c.barrier();
  const t1 = performance.now();
  const d = new Float32Array(512);
  for (let i = 0; i < 2000; i++) await c.allReduce(d);
  const t2 = performance.now();
  return { barrierUs: ((t1 - t0) * 1000) / 2000, smallArUs: ((t2 - t1) * 1000) / 2000 };
}

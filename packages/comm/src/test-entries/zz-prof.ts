import type { RankContext } from '../launcher.js';
export async function main(ctx: RankContext) {
  const c = ctx.state.tp.cpuGroup;
  const n = (16 << 20) / 4;
  const data = new Float32Array(n).fill(1);
  for (let i = 0; i < 3; i++) await c.allReduce(data);
  (globalThis as any).T = undefined;
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) await c.allReduce(data);
  const T = (globalThis as any).T;
  for (const k of Object.keys(T)) T[k] = +(T[k] / 10).toFixed(2);
  return { per: (performance.now() - t0) / 10, T };
}

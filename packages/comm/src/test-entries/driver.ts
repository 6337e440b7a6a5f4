/** Ranks read the driver's broadcasts until the pool closes, then report what they saw. */
import type { RankContext } from '../launcher.js';

export interface DriverReport {
  count: number;
  /** JSON of every JSON message, in order. */
  json: string[];
  /** Float32Array messages: length and sum. */
  arrays: { length: number; sum: number }[];
  /** The world group's mq-broadcast object sent by rank 0 after the driver said so. */
  fromRank0: unknown;
}

export async function main(ctx: RankContext): Promise<DriverReport> {
  const report: DriverReport = { count: 0, json: [], arrays: [], fromRank0: null };
  ctx.driver.send({ hello: ctx.rank });
  for (;;) {
    const msg = await ctx.driver.recv();
    if (msg === undefined) break;
    report.count++;
    if (msg instanceof Float32Array) {
      let sum = 0;
      for (const v of msg) sum += v;
      report.arrays.push({ length: msg.length, sum });
    } else {
      report.json.push(JSON.stringify(msg));
      if ((msg as { cmd?: string }).cmd === 'relay') {
        report.fromRank0 = await ctx.state.world.broadcastObject(ctx.rank === 0 ? { relayed: 'by rank 0', big: 'x'.repeat(3 << 20) } : undefined);
        (report.fromRank0 as { big: string }).big = `${(report.fromRank0 as { big: string }).big.length}`;
      }
    }
  }
  return report;
}

/** bench:comm's tables (markdown), from one run's results. */
import type { DecodeResult } from './comm-decode.js';
import type { ShmRow } from './comm-shm.js';
import type { TcpRow } from './comm-tcp.js';

export interface CommBenchResult {
  memcpyGBs: number;
  rows: ShmRow[];
  tcp: TcpRow[];
  decode: DecodeResult | null;
  machine: { cpus: number; node: string; spinUs: number | null; loadavg: number[] };
}

function human(bytes: number): string {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes / 1024} KiB`;
}

export function formatTable(r: CommBenchResult): string {
  const lines = [
    `allReduce (float32, shared memory, worker threads) — ${r.machine.cpus} CPUs, Node ${r.machine.node}, load average ${r.machine.loadavg.map((x) => x.toFixed(2)).join(' ')}`,
    `memcpy (Float32Array.set, 64 MiB): ${r.memcpyGBs.toFixed(2)} GB/s`,
    '',
    '| size | ws | latency µs | algbw GB/s | busbw GB/s | busbw / memcpy |',
    '| ---: | -: | ---: | ---: | ---: | ---: |',
  ];
  for (const x of r.rows) {
    lines.push(`| ${human(x.bytes)} | ${x.worldSize} | ${x.latencyUs.toFixed(1)} | ${x.algBwGBs.toFixed(3)} | ${x.busBwGBs.toFixed(3)} | ${x.ofMemcpy.toFixed(3)} |`);
  }
  if (r.tcp.length) {
    lines.push(
      '',
      'allReduce over TCP (loopback, authenticated sockets, frames MACed) vs shared memory, same run; MAC cost = time with ÷ without',
      '',
      '| size | ws | tcp latency µs | tcp busbw GB/s | no-MAC latency µs | MAC cost | shm latency µs | tcp ÷ shm time |',
      '| ---: | -: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const t of r.tcp) {
      const shm = r.rows.find((x) => x.bytes === t.bytes && x.worldSize === t.ws);
      lines.push(
        `| ${human(t.bytes)} | ${t.ws} | ${t.latencyUs.toFixed(1)} | ${t.busbwGBs.toFixed(3)} | ${t.noMacLatencyUs.toFixed(1)} | ${(t.latencyUs / t.noMacLatencyUs).toFixed(2)}× | ` +
          `${shm ? shm.latencyUs.toFixed(1) : '—'} | ${shm ? (t.latencyUs / shm.latencyUs).toFixed(1) : '—'} |`,
      );
    }
  }
  const d = r.decode;
  if (d) {
    lines.push(
      '',
      `decode, weft generate --tp ${d.tp} --max-tokens ${d.maxTokens} (${d.model}), ranks as threads vs processes over TCP on loopback; backend ${[...new Set(d.runs.map((x) => x.backend))].join(', ')}`,
      '',
      '| transport | decode tok/s (median) | runs: decode tok/s | runs: whole command s |',
      '| --- | ---: | --- | --- |',
    );
    for (const t of ['thread', 'tcp'] as const) {
      const runs = d.runs.filter((x) => x.transport === t);
      lines.push(`| ${t} | ${(t === 'tcp' ? d.tcpTokPerS : d.threadTokPerS).toFixed(1)} | ${runs.map((x) => x.tokPerS.toFixed(1)).join(', ')} | ${runs.map((x) => x.wallS.toFixed(2)).join(', ')} |`);
    }
    lines.push('', `tcp ÷ threads decode speed: ${d.ratio.toFixed(2)}× (target ≥ 0.8×)${d.ratio >= 0.8 ? '' : ' — BELOW TARGET'}`);
  }
  return lines.join('\n');
}

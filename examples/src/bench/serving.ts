/**
 * bench:serving — the engine under load, offline (no HTTP): one seeded set of
 * requests (prompt lengths 32–256, outputs 16–128 tokens) sent all at once and
 * with Poisson arrivals at several rates, and the same requests one at a time
 * (the pre-engine behaviour). Reports output tokens/s, TTFT and TPOT p50/p99
 * and the most KV blocks in use; writes bench-results/serving.json.
 *
 *   npx tsx examples/src/bench/serving.ts [--model DIR] [--requests 200] [--rates 2,8] [--max-num-seqs 16] [--tp 1]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type BackendName } from '@weft/core';
import { LLM } from '@weft/engine';
import { defaultModelDir } from '../cli/load-model.js';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string' },
    requests: { type: 'string', default: '200' },
    rates: { type: 'string', default: '2,8' },
    'max-num-seqs': { type: 'string', default: '16' },
    tp: { type: 'string', default: '1' },
    pp: { type: 'string', default: '1' },
    backend: { type: 'string' },
    seed: { type: 'string', default: '1' },
    'no-sequential': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-results/serving.json' },
  },
});

interface Req {
  prompt: number[];
  maxTokens: number;
  /** Seconds after the start of the run. */
  arrival: number;
}

interface Timing {
  arrival: number;
  firstToken: number;
  done: number;
  tokens: number;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    s ^= s >>> 12;
    return (s >>> 0) / 4294967296;
  };
}

function makeRequests(n: number, vocab: number, seed: number): Req[] {
  const r = rng(seed);
  const int = (a: number, b: number) => a + Math.floor(r() * (b - a + 1));
  return Array.from({ length: n }, () => ({ prompt: Array.from({ length: int(32, 256) }, () => int(3, vocab - 1)), maxTokens: int(16, 128), arrival: 0 }));
}

/** Poisson arrivals at `rate` requests/s (exponential gaps), same seed every run. */
function withArrivals(reqs: Req[], rate: number, seed: number): Req[] {
  const r = rng(seed + 7);
  let t = 0;
  return reqs.map((q) => {
    if (Number.isFinite(rate)) t += -Math.log(1 - r()) / rate;
    return { ...q, arrival: Number.isFinite(rate) ? t : 0 };
  });
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function runConcurrent(llm: LLM, reqs: Req[]): Promise<{ timings: Timing[]; wall: number; peakBlocks: number }> {
  const t0 = performance.now();
  let peakBlocks = 0;
  const sampler = setInterval(() => (peakBlocks = Math.max(peakBlocks, llm.stats().kvBlocksUsed)), 5);
  const timings = await Promise.all(
    reqs.map(async (q) => {
      const wait = q.arrival * 1000 - (performance.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const arrival = performance.now();
      let firstToken = 0;
      let tokens = 0;
      for await (const ev of llm.stream(q.prompt, { maxTokens: q.maxTokens, ignoreEos: true })) {
        if (tokens === 0 && ev.tokenIds.length) firstToken = performance.now();
        tokens += ev.tokenIds.length;
      }
      return { arrival, firstToken, done: performance.now(), tokens };
    }),
  );
  clearInterval(sampler);
  return { timings, wall: (performance.now() - t0) / 1000, peakBlocks };
}

async function runSequential(llm: LLM, reqs: Req[]): Promise<{ timings: Timing[]; wall: number; peakBlocks: number }> {
  const t0 = performance.now();
  const timings: Timing[] = [];
  let peakBlocks = 0;
  for (const q of reqs) {
    const arrival = performance.now();
    let firstToken = 0;
    let tokens = 0;
    for await (const ev of llm.stream(q.prompt, { maxTokens: q.maxTokens, ignoreEos: true })) {
      if (tokens === 0 && ev.tokenIds.length) firstToken = performance.now();
      tokens += ev.tokenIds.length;
      peakBlocks = Math.max(peakBlocks, llm.stats().kvBlocksUsed);
    }
    timings.push({ arrival, firstToken, done: performance.now(), tokens });
  }
  return { timings, wall: (performance.now() - t0) / 1000, peakBlocks };
}

function summarize(name: string, r: { timings: Timing[]; wall: number; peakBlocks: number }) {
  const tokens = r.timings.reduce((a, t) => a + t.tokens, 0);
  const ttft = r.timings.map((t) => t.firstToken - t.arrival);
  const tpot = r.timings.filter((t) => t.tokens > 1).map((t) => (t.done - t.firstToken) / (t.tokens - 1));
  return {
    name,
    requests: r.timings.length,
    outputTokens: tokens,
    seconds: +r.wall.toFixed(2),
    outputTokensPerSecond: +(tokens / r.wall).toFixed(1),
    ttftMsP50: +pct(ttft, 50).toFixed(1),
    ttftMsP99: +pct(ttft, 99).toFixed(1),
    tpotMsP50: +pct(tpot, 50).toFixed(2),
    tpotMsP99: +pct(tpot, 99).toFixed(2),
    peakKvBlocks: r.peakBlocks,
  };
}

const dir = v.model ?? defaultModelDir();
const n = Number(v.requests);
const seed = Number(v.seed);
const maxNumSeqs = Number(v['max-num-seqs']);
const llm = await LLM.load(dir, { tp: Number(v.tp), pp: Number(v.pp), maxNumSeqs, backend: v.backend as BackendName | undefined, timeoutMs: 600_000 });
try {
  const base = makeRequests(n, llm.vocabSize, seed);
  // Warm-up: one short request.
  await llm.generate([base[0]!.prompt.slice(0, 8)], { maxTokens: 4, ignoreEos: true });
  const rows = [];
  for (const rate of [Infinity, ...String(v.rates).split(',').filter(Boolean).map(Number)]) {
    await llm.resetScheduler({}); // a cold prefix cache for every run
    const label = Number.isFinite(rate) ? `Poisson ${rate} req/s` : 'all at once';
    rows.push(summarize(label, await runConcurrent(llm, withArrivals(base, rate, seed))));
    console.error(`done: ${label}`);
  }
  if (!v['no-sequential']) {
    await llm.resetScheduler({});
    rows.push(summarize('one at a time', await runSequential(llm, base)));
  }
  const header = ['run', 'req', 'out tok', 's', 'out tok/s', 'TTFT p50 ms', 'TTFT p99 ms', 'TPOT p50 ms', 'TPOT p99 ms', 'peak KV blocks'];
  const lines = rows.map((r) => [r.name, r.requests, r.outputTokens, r.seconds, r.outputTokensPerSecond, r.ttftMsP50, r.ttftMsP99, r.tpotMsP50, r.tpotMsP99, r.peakKvBlocks].join(' | '));
  console.log(`| ${header.join(' | ')} |\n|${header.map(() => ' --- ').join('|')}|\n${lines.map((l) => `| ${l} |`).join('\n')}`);
  const seq = rows.find((r) => r.name === 'one at a time');
  const burst = rows[0]!;
  if (seq) console.log(`\nall at once vs one at a time: ${(burst.outputTokensPerSecond / seq.outputTokensPerSecond).toFixed(2)}× output tokens/s`);
  mkdirSync(v.out.replace(/\/[^/]*$/, ''), { recursive: true });
  writeFileSync(
    v.out,
    JSON.stringify({ model: dir, tp: Number(v.tp), pp: Number(v.pp), maxNumSeqs, kvBlocksTotal: llm.stats().kvBlocksTotal, backend: v.backend ?? 'auto', seed, rows }, null, 2),
  );
} finally {
  await llm.close();
}

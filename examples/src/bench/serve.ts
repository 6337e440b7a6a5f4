/**
 * bench:serve — what the HTTP layer costs. bench:serving's request set (fixed
 * seed; prompts of 32–256 random token ids, 16–128 output tokens, ignore_eos,
 * as vLLM's benchmark_serving random dataset) runs all at once against the
 * same loaded engine (prefix caching off, so every pass does the same
 * work) two ways, alternating, in one run:
 *   in-process: `llm.stream()` for every request;
 *   HTTP: `weft serve`'s server (@weft/serve) on 127.0.0.1, the requests
 *   sent by the official `openai` client, streaming, from a child process
 *   (as benchmark_serving runs beside the server).
 * Reports output throughput, TTFT and TPOT p50/p99 of each; a table on
 * stdout, JSON in bench-results/serve.json.
 *
 *   npm run bench:serve -- [--model DIR] [--requests 64] [--rounds 3] [--tp N] [--backend B] [--seed 1]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BackendName } from '@weft/core';
import { LLM } from '@weft/engine';
import { servingRequests, type ServingRequest } from './requests.js';
import { mean, percentile } from './stats.js';

// Loaded by specifiers tsup cannot see: examples/package.json does not list these, and bundled they would not run.
const SERVE = '@weft/serve';
const OPENAI = 'openai';

interface Timing {
  /** ms from the start of the pass. */
  sent: number;
  first: number;
  last: number;
  tokens: number;
}

interface PassResult {
  mode: 'in-process' | 'http';
  round: number;
  wallS: number;
  outputTokens: number;
  outputTokS: number;
  requestsPerS: number;
  ttftMs: { p50: number; p99: number; mean: number };
  tpotMs: { p50: number; p99: number; mean: number };
  serverCpuS?: number;
  clientCpuS?: number;
}

function summarize(mode: PassResult['mode'], round: number, timings: Timing[], wallMs: number): PassResult {
  const ttft = timings.map((t) => t.first - t.sent);
  const tpot = timings.filter((t) => t.tokens > 1).map((t) => (t.last - t.first) / (t.tokens - 1));
  const tokens = timings.reduce((a, t) => a + t.tokens, 0);
  const stat = (xs: number[]) => ({ p50: +percentile(xs, 50).toFixed(1), p99: +percentile(xs, 99).toFixed(1), mean: +mean(xs).toFixed(1) });
  return { mode, round, wallS: +(wallMs / 1000).toFixed(2), outputTokens: tokens, outputTokS: +(tokens / (wallMs / 1000)).toFixed(1), requestsPerS: +(timings.length / (wallMs / 1000)).toFixed(2), ttftMs: stat(ttft), tpotMs: stat(tpot) };
}

async function inProcess(llm: LLM, reqs: ServingRequest[]): Promise<{ timings: Timing[]; wallMs: number }> {
  const t0 = performance.now();
  const timings = await Promise.all(
    reqs.map(async (q) => {
      const t: Timing = { sent: performance.now() - t0, first: 0, last: 0, tokens: 0 };
      for await (const ev of llm.stream(q.promptTokenIds, { maxTokens: q.maxTokens, temperature: 0, ignoreEos: true })) {
        if (!ev.tokenIds.length) continue;
        t.last = performance.now() - t0;
        if (!t.first) t.first = t.last;
        t.tokens += ev.tokenIds.length;
      }
      return t;
    }),
  );
  return { timings, wallMs: performance.now() - t0 };
}

/** The client side, in its own process: every request at once through the official client, streaming. */
async function clientMain(url: string): Promise<void> {
  const { default: OpenAI } = (await import(OPENAI)) as typeof import('openai');
  let input = '';
  for await (const c of process.stdin) input += c;
  const reqs = JSON.parse(input) as ServingRequest[];
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'bench', maxRetries: 0, timeout: 600_000 });
  const t0 = performance.now();
  const timings = await Promise.all(
    reqs.map(async (q) => {
      const t: Timing = { sent: performance.now() - t0, first: 0, last: 0, tokens: 0 };
      const body = { model: 'bench', prompt: q.promptTokenIds, max_tokens: q.maxTokens, temperature: 0, ignore_eos: true, stream: true, return_token_ids: true };
      const stream = await client.completions.create(body as unknown as Parameters<typeof client.completions.create>[0] & { stream: true });
      for await (const ch of stream) {
        const n = ch.choices.reduce((a, c) => a + ((c as unknown as { token_ids?: number[] }).token_ids?.length ?? 0), 0);
        if (!n) continue;
        t.last = performance.now() - t0;
        if (!t.first) t.first = t.last;
        t.tokens += n;
      }
      return t;
    }),
  );
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ timings, wallMs: performance.now() - t0, clientCpuS: (cpu.user + cpu.system) / 1e6 }));
}

function overHttp(url: string, reqs: ServingRequest[]): Promise<{ timings: Timing[]; wallMs: number; clientCpuS: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--client', url], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as { timings: Timing[]; wallMs: number; clientCpuS: number }) : reject(new Error(`bench client exited ${code}`))));
    child.stdin.end(JSON.stringify(reqs));
  });
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      client: { type: 'string' },
      model: { type: 'string', default: fileURLToPath(new URL('../../../models/weft-tiny-code', import.meta.url)) },
      requests: { type: 'string', default: '64' },
      rounds: { type: 'string', default: '3' },
      seed: { type: 'string', default: '1' },
      tp: { type: 'string', default: '1' },
      backend: { type: 'string' },
      out: { type: 'string', default: 'bench-results/serve.json' },
    },
  });
  if (v.client) return clientMain(v.client);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const { createServer } = (await import(SERVE)) as typeof import('@weft/serve');
  log(`loading ${v.model} (tp ${v.tp}, backend ${v.backend ?? 'default'})`);
  // No prefix caching: every pass repeats the same prompts, and later passes would find them cached.
  const llm = await LLM.load(v.model, { tp: Number(v.tp), backend: v.backend as BackendName | undefined, enablePrefixCaching: false });
  const server = await createServer(llm, { modelDir: v.model, servedModelName: 'bench', maxWaitingRequests: 100_000 });
  const url = await server.listen({ port: 0 });
  const reqs = servingRequests(Number(v.requests), llm.vocabSize, Number(v.seed));
  const promptTokens = reqs.reduce((a, q) => a + q.promptTokenIds.length, 0);
  const outputTokens = reqs.reduce((a, q) => a + q.maxTokens, 0);
  log(`${reqs.length} requests, ${promptTokens} prompt tokens, ${outputTokens} output tokens; warm-up…`);
  // Warm-up: every prompt once (all the prefill and batch shapes), with short outputs.
  await inProcess(llm, reqs.map((q) => ({ ...q, maxTokens: 4 })));
  const results: PassResult[] = [];
  for (let round = 0; round < Number(v.rounds); round++) {
    // Alternate the order so neither mode always runs on a warmer (or busier) machine.
    for (const mode of round % 2 ? (['http', 'in-process'] as const) : (['in-process', 'http'] as const)) {
      const cpu0 = process.cpuUsage();
      const r = mode === 'http' ? await overHttp(url, reqs) : await inProcess(llm, reqs);
      const cpu = process.cpuUsage(cpu0);
      const s = summarize(mode, round, r.timings, r.wallMs);
      // CPU seconds of this process (engine driver, rank threads, server) and of the client process.
      s.serverCpuS = +((cpu.user + cpu.system) / 1e6).toFixed(2);
      if ('clientCpuS' in r) s.clientCpuS = +(r.clientCpuS as number).toFixed(2);
      if (s.outputTokens !== outputTokens) throw new Error(`${mode}: ${s.outputTokens} output tokens, expected ${outputTokens}`);
      results.push(s);
      log(`round ${round} ${mode}: ${s.outputTokS} tok/s`);
    }
  }
  await server.shutdown({ graceMs: 1000 });
  const stats = llm.stats();
  await llm.close();

  // The machine's load drifts between rounds: compare the two modes within each round, then take the median.
  const ratios = Array.from({ length: Number(v.rounds) }, (_, round) => {
    const of = (mode: PassResult['mode']) => results.find((r) => r.round === round && r.mode === mode)!.outputTokS;
    return of('http') / of('in-process');
  });
  const httpCost = 1 - percentile(ratios, 50);
  console.log(`\nbench:serve — ${reqs.length} requests at once (prompts 32–256, outputs 16–128 tokens, seed ${v.seed}), ${v.model.split('/').pop()}, tp ${v.tp}, ${cpus().length} cores\n`);
  console.log('| mode | round | wall s | output tok/s | req/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | CPU s (engine+server / client) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) console.log(`| ${r.mode} | ${r.round} | ${r.wallS} | ${r.outputTokS} | ${r.requestsPerS} | ${r.ttftMs.p50} | ${r.ttftMs.p99} | ${r.tpotMs.p50} | ${r.tpotMs.p99} | ${r.serverCpuS}${r.clientCpuS !== undefined ? ` / ${r.clientCpuS}` : ''} |`);
  console.log(`\nHTTP ÷ in-process throughput per round: ${ratios.map((r) => r.toFixed(3)).join(', ')}; HTTP cost (median round): ${(httpCost * 100).toFixed(1)} %`);
  mkdirSync(dirname(v.out), { recursive: true });
  writeFileSync(
    v.out,
    JSON.stringify({ date: new Date().toISOString(), model: v.model, tp: Number(v.tp), backend: v.backend ?? null, cores: cpus().length, requests: reqs.length, seed: Number(v.seed), promptTokens, outputTokens, results, httpOverInProcess: ratios.map((r) => +r.toFixed(4)), httpThroughputCost: +httpCost.toFixed(4), prefixCacheHits: stats.prefixCacheHits, preemptions: stats.preemptions }, null, 2),
  );
  log(`wrote ${resolve(v.out)}`);
}

await main();
// Exit once stdout has drained (the client's JSON goes through a pipe); the ranks' handles would keep the process up.
process.stdout.write('', () => process.exit(0));

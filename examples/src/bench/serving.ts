/**
 * bench:serving — the engine under load, offline (no HTTP): one seeded set of
 * requests (prompt lengths 32–256, outputs 16–128 tokens) sent all at once and
 * with Poisson arrivals at several rates, and the same requests one at a time
 * (the pre-engine behaviour). Reports output tokens/s, TTFT and TPOT p50/p99
 * and the most KV blocks in use; writes bench-results/serving.json.
 *
 *   node examples/dist/bench/serving.js [--model DIR] [--requests 200] [--rates 2,8] [--max-num-seqs 16] [--tp 1]
 *
 * With --shape small (the 156 M Llama of bench:cpu, random weights, written once
 * as safetensors + GGUF f32 under $TMPDIR/weft-bench-cpu), the same requests also
 * run on node-llama-cpp 3.21.1 (one context with --max-num-seqs sequences,
 * as many evaluations at once), in the same process on the same weights, and
 * every configuration runs once per round, rounds alternating; medians. Then a
 * step probe: weft's decode step time at batch 1 and batch --max-num-seqs.
 *
 *   node examples/dist/bench/serving.js --shape small --backend tensorflow --requests 24 --max-out 64 --rates '' --rounds 2 --llama-threads 1
 *
 * --format bf16 | q8_0 | q4_0: weft loads the checkpoint with that dtype / quantization (the device plan on the
 * CPU backends) and node-llama-cpp gets a GGUF of the very same blocks (default f32).
 *
 * GPU mode (scripts/gpu/device.sh extra, issue 20): `--backend webgpu --model DIR` (bench:gpu's TinyLlama
 * checkpoint); `--requests-out FILE` writes the request set (token ids, output lengths) for
 * scripts/gpu/torch_serving.py (transformers' continuous batching, `generate_batch`, on the same weights),
 * `--torch-json FILE` puts its rows beside weft's with the ratio to the better one:
 *
 *   node examples/dist/bench/serving.js --backend webgpu --model DIR --format bf16 --requests 64 --min-out 64 --max-out 64 --max-num-seqs 64 --rates '' --no-sequential --requests-out reqs.json
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BackendName } from '@weft/core';
import { LLM } from '@weft/engine';
import { defaultModelDir } from '../cli/load-model.js';
import { weftFormatOptions } from './weight-formats.js';
import { llamaCheckpointToGguf, type GgufFormat } from './gguf-writer.js';
import { SHAPES, hasRandomLlama, paramCount, writeRandomLlama } from './random-checkpoint.js';
import { poissonArrivals, rng, servingRequests, type ServingRequest } from './requests.js';
import { median, percentile } from './stats.js';

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
    /** A random-weight shape of random-checkpoint.ts (small = the 156 M Llama); turns node-llama-cpp on. */
    shape: { type: 'string' },
    'no-llama-cpp': { type: 'boolean', default: false },
    // Weights: f32 (default), bf16, q8_0, q4_0 — weft's dtype / quantization and the GGUF of the same blocks.
    format: { type: 'string', default: 'f32' },
    rounds: { type: 'string', default: '1' },
    'min-out': { type: 'string', default: '16' },
    'max-out': { type: 'string', default: '128' },
    /** CPU threads: TF intra-op threads per rank (default cores ÷ tp) and llama.cpp threads (default cores). */
    threads: { type: 'string' },
    /** llama.cpp threads (default --threads, else cores). On a loaded machine 1 is its best: its 2-thread spin barriers stall (docs/benchmarks/cpu.md). */
    'llama-threads': { type: 'string' },
    dir: { type: 'string', default: join(tmpdir(), 'weft-bench-cpu') },
    out: { type: 'string', default: 'bench-results/serving.json' },
    /** GPU mode: write the request set for scripts/gpu/torch_serving.py; read its results. */
    'requests-out': { type: 'string' },
    'torch-json': { type: 'string' },
  },
});

/** A request and when it arrives (seconds after the start of the run). */
type Req = ServingRequest & { arrival: number };

interface Timing {
  arrival: number;
  firstToken: number;
  done: number;
  tokens: number;
}

function makeRequests(n: number, vocab: number, seed: number, minOut = 16, maxOut = 128): Req[] {
  return servingRequests(n, vocab, seed, minOut, maxOut).map((q) => ({ ...q, arrival: 0 }));
}

/** The same requests with Poisson arrivals at `rate` requests/s (same seed every run). */
function withArrivals(reqs: Req[], rate: number, seed: number): Req[] {
  const at = poissonArrivals(reqs.length, rate, seed);
  return reqs.map((q, i) => ({ ...q, arrival: at[i]! }));
}

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
      for await (const ev of llm.stream(q.promptTokenIds, { maxTokens: q.maxTokens, ignoreEos: true, temperature: 0 })) {
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
    for await (const ev of llm.stream(q.promptTokenIds, { maxTokens: q.maxTokens, ignoreEos: true, temperature: 0 })) {
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
    ttftMsP50: +percentile(ttft, 50).toFixed(1),
    ttftMsP99: +percentile(ttft, 99).toFixed(1),
    tpotMsP50: +percentile(tpot, 50).toFixed(2),
    tpotMsP99: +percentile(tpot, 99).toFixed(2),
    peakKvBlocks: r.peakBlocks,
  };
}

type Run = { timings: Timing[]; wall: number; peakBlocks: number };
type Row = ReturnType<typeof summarize>;
const log = (m: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${m}`);

// node-llama-cpp is a root devDependency, imported by name at run time (never bundled).
const NODE_LLAMA_CPP = 'node-llama-cpp';

async function loadLlamaCpp(gguf: string, sequences: number, threads: number) {
  const nlc = (await import(/* @vite-ignore */ NODE_LLAMA_CPP)) as typeof import('node-llama-cpp');
  const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error, progressLogs: false });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  // contextSize is per sequence (node-llama-cpp allocates contextSize × sequences cells): the longest prompt + output fits.
  const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads, sequences });
  const seqs = Array.from({ length: sequences }, () => ctx.getSequence());
  return {
    seqs,
    async dispose() {
      await ctx.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}
type Seq = Awaited<ReturnType<typeof loadLlamaCpp>>['seqs'][number];

/**
 * node-llama-cpp, every request queued at once: one worker per sequence takes the next request, so at most
 * `seqs.length` evaluations run together (node-llama-cpp batches the sequences of a context into one decode).
 * "Peak KV blocks" here: the cells in use, counted in blocks of 16 tokens as weft counts them.
 */
async function runLlamaCpp(seqs: Seq[], reqs: Req[]): Promise<Run> {
  const t0 = performance.now();
  const timings: Timing[] = new Array(reqs.length);
  const cells = new Array<number>(seqs.length).fill(0);
  let peakBlocks = 0;
  let next = 0;
  await Promise.all(
    seqs.map(async (seq, w) => {
      for (let i = next++; i < reqs.length; i = next++) {
        const q = reqs[i]!;
        await seq.clearHistory();
        let firstToken = 0;
        let tokens = 0;
        for await (const _tok of seq.evaluate(q.promptTokenIds as never[], { temperature: 0 })) {
          if (tokens === 0) firstToken = performance.now();
          tokens++;
          cells[w] = q.promptTokenIds.length + tokens;
          peakBlocks = Math.max(peakBlocks, cells.reduce((a, c) => a + Math.ceil(c / 16), 0));
          if (tokens >= q.maxTokens) break;
        }
        cells[w] = 0;
        timings[i] = { arrival: t0, firstToken, done: performance.now(), tokens };
      }
    }),
  );
  return { timings, wall: (performance.now() - t0) / 1000, peakBlocks };
}

/** Per-step time of weft's decode at batch 1 and batch `b` (8-token prompts; 33 − 1 tokens), and prefill tok/s of one 256-token prompt. */
async function stepProbe(llm: LLM, b: number, vocab: number) {
  const r = rng(99);
  const prompt = (len: number) => Array.from({ length: len }, () => 3 + Math.floor(r() * (vocab - 4)));
  const time = async (prompts: number[][], n: number) => {
    const t = performance.now();
    await llm.generate(prompts, { maxTokens: n, ignoreEos: true, temperature: 0 });
    return performance.now() - t;
  };
  const decodeStepMs = async (batch: number) => {
    const a = await time(Array.from({ length: batch }, () => prompt(8)), 1);
    const c = await time(Array.from({ length: batch }, () => prompt(8)), 33);
    return (c - a) / 32;
  };
  await llm.resetScheduler({});
  const step1 = await decodeStepMs(1);
  const stepB = await decodeStepMs(b);
  const prefillMs = await time([prompt(256)], 1);
  return { decodeStepMsBatch1: +step1.toFixed(1), [`decodeStepMsBatch${b}`]: +stepB.toFixed(1), stepCostRatio: +(stepB / step1).toFixed(2), prefillTokS256: +(256 / (prefillMs / 1000)).toFixed(0) };
}


const format = String(v.format) as GgufFormat;
if (!['f32', 'bf16', 'q8_0', 'q4_0'].includes(format)) throw new Error(`--format ${format}: one of f32, bf16, q8_0, q4_0`);
const shape = v.shape ? SHAPES[v.shape] : undefined;
if (v.shape && !shape) throw new Error(`--shape ${v.shape}: one of ${Object.keys(SHAPES).join(', ')}`);
let dir = v.model ?? defaultModelDir();
let gguf: string | undefined;
if (shape) {
  dir = v.model ?? join(String(v.dir), `${shape.name}-${shape.layers}l-${shape.kvHeads}kv`);
  if (!hasRandomLlama(dir)) writeRandomLlama(dir, shape, log);
  gguf = join(dir, `model-${format}.gguf`);
  if (!existsSync(gguf)) {
    llamaCheckpointToGguf(dir, gguf + '.partial', log, format);
    renameSync(gguf + '.partial', gguf);
  }
}
const n = Number(v.requests);
const seed = Number(v.seed);
const maxNumSeqs = Number(v['max-num-seqs']);
const tp = Number(v.tp);
const rounds = Math.max(1, Number(v.rounds));
const cores = availableParallelism();
const intraOpThreads = v.threads ? Number(v.threads) : Math.max(1, Math.floor(cores / tp));
const llamaThreads = v['llama-threads'] ? Number(v['llama-threads']) : v.threads ? Number(v.threads) : cores;
const useLlamaCpp = Boolean(gguf) && !v['no-llama-cpp'];
const loadBefore = loadavg();
const started = performance.now();
log(`load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')}; loading weft (${v.backend ?? 'auto'}, tp ${tp}, ${intraOpThreads} intra-op threads/rank) from ${dir}`);
const llm = await LLM.load(dir, { tp, pp: Number(v.pp), maxNumSeqs, backend: v.backend as BackendName | undefined, intraOpThreads, timeoutMs: 600_000, ...weftFormatOptions(format) });
log(`weft: ${llm.backend}, step ${llm.stepPath}, weights ${format}`);
let llamaCpp: Awaited<ReturnType<typeof loadLlamaCpp>> | undefined;
try {
  if (useLlamaCpp) {
    log(`loading node-llama-cpp (${maxNumSeqs} sequences, ${llamaThreads} threads) from ${gguf}`);
    llamaCpp = await loadLlamaCpp(gguf!, maxNumSeqs, llamaThreads);
  }
  const base = makeRequests(n, llm.vocabSize, seed, Number(v['min-out']), Number(v['max-out']));
  if (v['requests-out']) writeFileSync(v['requests-out'], JSON.stringify(base.map(({ promptTokenIds, maxTokens }) => ({ promptTokenIds, maxTokens }))));
  // Warm-up: one short request on each engine.
  await llm.generate([base[0]!.promptTokenIds.slice(0, 8)], { maxTokens: 4, ignoreEos: true });
  if (llamaCpp) await runLlamaCpp(llamaCpp.seqs.slice(0, 1), [{ promptTokenIds: base[0]!.promptTokenIds.slice(0, 8), maxTokens: 4, arrival: 0 }]);
  // A GPU idles at a low clock (the H200 of 2026-12-03: 345 MHz) and needs 0.1–1.5 s of load to reach its
  // working one (bench gpu-step): batches of the request set's shape for 1.5 s first (transformers' side warms
  // with a batch too).
  if (llm.backend === 'webgpu') {
    const warm = base.slice(0, maxNumSeqs).map((r) => r.promptTokenIds.slice(0, 32));
    for (const t0 = performance.now(); performance.now() - t0 < 1500; ) await llm.generate(warm, { maxTokens: 16, ignoreEos: true });
  }
  const rates = String(v.rates).split(',').filter(Boolean).map(Number);
  const runs = new Map<string, Row[]>();
  const add = (r: Row) => {
    (runs.get(r.name) ?? runs.set(r.name, []).get(r.name)!).push(r);
    log(`  ${r.name}: ${r.outputTokensPerSecond} out tok/s (${r.seconds} s), TTFT p50 ${r.ttftMsP50} ms, TPOT p50 ${r.tpotMsP50} ms`);
  };
  type Step = 'weft' | 'sequential' | 'llama.cpp';
  const steps: Step[] = ['weft', ...(v['no-sequential'] ? [] : ['sequential' as const]), ...(llamaCpp ? ['llama.cpp' as const] : [])];
  for (let round = 1; round <= rounds; round++) {
    for (const step of round % 2 ? steps : [...steps].reverse()) {
      log(`round ${round}/${rounds}: ${step}`);
      if (step === 'weft') {
        for (const rate of [Infinity, ...rates]) {
          await llm.resetScheduler({}); // a cold prefix cache for every run
          const label = Number.isFinite(rate) ? `weft Poisson ${rate} req/s` : `weft all at once (max ${maxNumSeqs} seqs)`;
          add(summarize(label, await runConcurrent(llm, withArrivals(base, rate, seed))));
        }
      } else if (step === 'sequential') {
        await llm.resetScheduler({});
        add(summarize('weft one at a time', await runSequential(llm, base)));
      } else {
        add(summarize(`node-llama-cpp ${maxNumSeqs} sequences`, await runLlamaCpp(llamaCpp!.seqs, base)));
      }
    }
    log(`round ${round} done (${((performance.now() - started) / 1000).toFixed(0)} s so far)`);
  }
  log('step probe: weft decode step at batch 1 and batch ' + maxNumSeqs);
  const probe = await stepProbe(llm, maxNumSeqs, llm.vocabSize);
  const loadAfter = loadavg();
  const med = (rs: Row[], k: keyof Row) => +median(rs.map((r) => r[k] as number)).toFixed(2);
  const rows = [...runs].map(([name, rs]) => ({
    name, runs: rs.length, requests: rs[0]!.requests, outputTokens: rs[0]!.outputTokens,
    seconds: med(rs, 'seconds'), outputTokensPerSecond: med(rs, 'outputTokensPerSecond'),
    outputTokensPerSecondMin: Math.min(...rs.map((r) => r.outputTokensPerSecond)), outputTokensPerSecondMax: Math.max(...rs.map((r) => r.outputTokensPerSecond)),
    ttftMsP50: med(rs, 'ttftMsP50'), ttftMsP99: med(rs, 'ttftMsP99'), tpotMsP50: med(rs, 'tpotMsP50'), tpotMsP99: med(rs, 'tpotMsP99'),
    peakKvBlocks: Math.max(...rs.map((r) => r.peakKvBlocks)),
  }));
  const promptTokens = base.reduce((a, q) => a + q.promptTokenIds.length, 0);
  console.log(`\n${cpus()[0]?.model ?? '?'}, ${cores} cores; model ${shape ? `random ${shape.name} Llama, ${(paramCount(shape) / 1e6).toFixed(0)} M params` : dir}; weft ${v.backend ?? 'auto'} tp ${tp}, ${intraOpThreads} intra-op threads/rank${llamaCpp ? `; node-llama-cpp ${llamaThreads} threads` : ''}`);
  console.log(`${n} requests (prompts 32–256, ${promptTokens} prompt tokens; outputs ${v['min-out']}–${v['max-out']}, ${rows[0]!.outputTokens} output tokens), seed ${seed}; ${rounds} round(s), medians (min–max of out tok/s)`);
  console.log(`load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${loadAfter.map((x) => x.toFixed(2)).join(' ')} after\n`);
  const header = ['run', 'req', 'out tok', 's', 'out tok/s', 'TTFT p50 ms', 'TTFT p99 ms', 'TPOT p50 ms', 'TPOT p99 ms', 'peak KV blocks'];
  const lines = rows.map((r) => [r.name, r.requests, r.outputTokens, r.seconds, `${r.outputTokensPerSecond} (${r.outputTokensPerSecondMin}–${r.outputTokensPerSecondMax})`, r.ttftMsP50, r.ttftMsP99, r.tpotMsP50, r.tpotMsP99, r.peakKvBlocks].join(' | '));
  console.log(`| ${header.join(' | ')} |\n|${header.map(() => ' --- ').join('|')}|\n${lines.map((l) => `| ${l} |`).join('\n')}`);
  const burst = rows.find((r) => r.name.startsWith('weft all at once'))!;
  const seq = rows.find((r) => r.name === 'weft one at a time');
  const lc = rows.find((r) => r.name.startsWith('node-llama-cpp'));
  // transformers' continuous batching on the same requests (GPU mode), when its results are there.
  const torch = v['torch-json'] && existsSync(v['torch-json']) ? (JSON.parse(readFileSync(v['torch-json'], 'utf8').trim().split('\n').pop()!) as { rows: { engine: string; outputTokensPerSecond: number }[] }) : null;
  const bestTorch = torch?.rows.length ? Math.max(...torch.rows.map((r) => r.outputTokensPerSecond)) : null;
  for (const r of torch?.rows ?? []) console.log(`${r.engine}: ${r.outputTokensPerSecond} out tok/s`);
  const ratios = {
    weftBatchedOverOneAtATime: seq ? +(burst.outputTokensPerSecond / seq.outputTokensPerSecond).toFixed(2) : null,
    weftBatchedOverLlamaCpp: lc ? +(burst.outputTokensPerSecond / lc.outputTokensPerSecond).toFixed(2) : null,
    weftBatchedOverBestTransformers: bestTorch ? +(burst.outputTokensPerSecond / bestTorch).toFixed(2) : null,
  };
  console.log('');
  if (seq) console.log(`weft all at once ÷ weft one at a time: ${ratios.weftBatchedOverOneAtATime}× output tokens/s (target ≥ 5×)`);
  if (bestTorch) console.log(`weft all at once ÷ the better transformers continuous-batching row: ${ratios.weftBatchedOverBestTransformers}× output tokens/s (target ≥ 3×)`);
  if (lc) console.log(`weft all at once ÷ node-llama-cpp ${maxNumSeqs} sequences: ${ratios.weftBatchedOverLlamaCpp}× output tokens/s (target ≥ 1.0×)`);
  console.log(`weft decode step: ${JSON.stringify(probe)}`);
  mkdirSync(v.out.replace(/\/[^/]*$/, ''), { recursive: true });
  writeFileSync(
    v.out,
    JSON.stringify({
      date: new Date().toISOString(), machine: { cpu: cpus()[0]?.model ?? null, cores, node: process.version, loadBefore, loadAfter },
      model: dir, shape: shape ? { ...shape, params: paramCount(shape) } : null, gguf: gguf ?? null,
      tp, pp: Number(v.pp), maxNumSeqs, kvBlocksTotal: llm.stats().kvBlocksTotal, backend: v.backend ?? 'auto', intraOpThreads, llamaCppThreads: llamaCpp ? llamaThreads : null,
      stepPath: llm.stepPath, transformers: torch,
      seed, requests: n, promptTokens, outputRange: [Number(v['min-out']), Number(v['max-out'])], rounds, ratios, stepProbe: probe, rows,
      raw: Object.fromEntries(runs), elapsedS: +((performance.now() - started) / 1000).toFixed(1),
    }, null, 2),
  );
  log(`wrote ${v.out}`);
} finally {
  await llamaCpp?.dispose();
  await llm.close();
}

/** bench:cpu's child side: one configuration's run in its own process (weft or node-llama-cpp), and how the parent starts it. */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { checkAgreement, llamaBothContexts, trainedModelCheck, weftCheckRows, type CheckAgreement } from './agreement-check.js';
import type { Config } from './cpu-configs.js';
import type { LlamaShape } from './random-checkpoint.js';
import { rssBreakdown, type RssBreakdown } from './rss.js';
import { weftFormatOptions } from './weight-formats.js';

const CHECK_PROMPT = 16;
const CHECK_STEPS = 8;
export const promptOf = (len: number, vocab: number, salt = 0) => Array.from({ length: len }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (vocab - 3)));

// ---------------------------------------------------------------- child: one configuration, one run

export interface ChildJob {
  config: Config;
  shape: LlamaShape;
  dir: string;
  gguf: string;
  promptLen: number;
  decodeTokens: number;
  /** weft: write its check tokens/logits here; llama.cpp: compare against the file here. */
  checkFile?: string;
  /** Instead of a timed run: the check on the trained model (models/weft-tiny-code) in this format. */
  trainedCheck?: { modelDir: string; ggufDir: string };
}

export interface RunResult {
  loadS: number;
  prefillTokS: number;
  decodeTokS: number;
  tokens: number[];
  weightBytesPerRank?: number[];
  check?: CheckResult;
  /** Peak resident set (VmHWM) of the run's process, GB. */
  rssGb: number;
  /** Where the resident memory is at the end of the run (before close), rss.ts; null off Linux. */
  rss?: RssBreakdown | null;
  /** KV bytes the run wrote at most (every request's tokens, as if none shared a block). */
  kvWrittenBytes?: number;
  /** weft: the package LLM came from. */
  llmFrom?: string;
  /** weft: what its ranks' steps ran (LLM.stepPath). */
  stepPath?: string;
}

/** Teacher-forced on weft's greedy tokens: weft's step path against llama.cpp, and against weft's own full forward. */
export type CheckResult = CheckAgreement;

async function childWeft(job: ChildJob): Promise<RunResult> {
  const { LLM } = await import('@weft/engine');
  const from = '@weft/engine';
  const { config: c, promptLen, decodeTokens } = job;
  const prompt = promptOf(promptLen, job.shape.vocab);
  let t0 = performance.now();
  const llm = await LLM.load(job.dir, { tp: c.tp, pp: c.pp, backend: c.backend, timeoutMs: 600_000, devicePlan: c.devicePlan, ...weftFormatOptions(c.format) });
  const loadS = (performance.now() - t0) / 1000;
  try {
    const greedy = (n: number) => ({ maxTokens: n, temperature: 0, ignoreEos: true });
    await llm.generate([promptOf(8, job.shape.vocab, 1)], greedy(2)); // warm-up
    // Prefill: a 1-token generation; decode: the 64 steps a (1 + 64)-token generation adds to it.
    // Prefill is timed before and after, and the mean is subtracted. Each generation has its own prompt
    // (same length), so that no prefix cache can skip a prefill.
    const timed = async (n: number, salt: number) => {
      const t = performance.now();
      const [o] = await llm.generate([salt === 0 ? prompt : promptOf(promptLen, job.shape.vocab, salt)], greedy(n));
      return { s: (performance.now() - t) / 1000, tokens: o!.tokenIds };
    };
    const p1 = await timed(1, 10);
    const full = await timed(decodeTokens + 1, 0);
    const p2 = await timed(1, 11);
    const prefillS = (p1.s + p2.s) / 2;
    const fullS = full.s;
    const out = { tokenIds: full.tokens };
    // Memory as the timed runs left it: the check's full forward runs a tfjs step, which may load a deferred backend.
    const rss = rssBreakdown();
    const peakGb = rssGb();
    if (job.checkFile) {
      const chk = await weftCheckRows(llm, promptOf(CHECK_PROMPT, job.shape.vocab, 2), CHECK_STEPS);
      const rows = [...chk.step, ...chk.full];
      const flat = new Float32Array(rows.length * rows[0]!.length);
      rows.forEach((row, i) => flat.set(row, i * row.length));
      writeFileSync(job.checkFile + '.bin', Buffer.from(flat.buffer));
      writeFileSync(job.checkFile + '.json', JSON.stringify({ tokens: chk.tokens, cols: rows[0]!.length }));
    }
    return {
      loadS, prefillTokS: promptLen / prefillS, decodeTokS: fullS > prefillS ? decodeTokens / (fullS - prefillS) : NaN, tokens: out.tokenIds,
      weightBytesPerRank: llm.weightBytesPerRank, rssGb: peakGb, rss, llmFrom: from, stepPath: llm.stepPath,
      kvWrittenBytes: kvBytesPerToken(job.shape) * (8 + 2 + 3 * promptLen + decodeTokens + 3 + (job.checkFile ? CHECK_PROMPT + CHECK_STEPS : 0)),
    };
  } finally {
    await llm.close();
  }
}

/** weft's fp32 paged KV cache: K and V of every layer. */
const kvBytesPerToken = (s: LlamaShape) => s.layers * 2 * s.kvHeads * (s.hidden / s.heads) * 4;

/** Peak resident set of this process (VmHWM: worker-thread ranks included), in GB; the current RSS where /proc is absent. */
function rssGb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return (Number(m[1]) * 1024) / 1e9;
  } catch {
    // not Linux
  }
  return process.memoryUsage().rss / 1e9;
}

// node-llama-cpp is a root devDependency, imported by name at run time (never bundled).
const NODE_LLAMA_CPP = 'node-llama-cpp';

async function childLlama(job: ChildJob): Promise<RunResult> {
  const nlc = (await import(/* @vite-ignore */ NODE_LLAMA_CPP)) as typeof import('node-llama-cpp');
  const { config: c, promptLen, decodeTokens } = job;
  const prompt = promptOf(promptLen, job.shape.vocab);
  let t0 = performance.now();
  const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error, progressLogs: false });
  const model = await llama.loadModel({ modelPath: job.gguf, gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: c.threads, sequences: 1 });
  const seq = ctx.getSequence();
  const loadS = (performance.now() - t0) / 1000;
  try {
    // Generate `n` greedy tokens after `tokens` on a fresh sequence; times to the first token and the last.
    const run = async (tokens: number[], n: number) => {
      await seq.clearHistory();
      const out: number[] = [];
      const start = performance.now();
      let first = 0;
      for await (const tok of seq.evaluate(tokens as never[], { temperature: 0 })) {
        if (out.length === 0) first = performance.now();
        out.push(tok as number);
        if (out.length >= n) break;
      }
      return { out, prefillS: (first - start) / 1000, decodeS: (performance.now() - first) / 1000 };
    };
    await run(promptOf(8, job.shape.vocab, 1), 2); // warm-up
    const r = await run(prompt, decodeTokens + 1);
    let check: CheckResult | undefined;
    if (job.checkFile && existsSync(job.checkFile + '.json')) {
      const ref = JSON.parse(readFileSync(job.checkFile + '.json', 'utf8')) as { tokens: number[]; cols: number };
      const buf = readFileSync(job.checkFile + '.bin');
      const flat = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
      const row = (i: number) => flat.subarray(i * ref.cols, (i + 1) * ref.cols);
      const n = ref.tokens.length;
      const weft = { tokens: ref.tokens, step: Array.from({ length: n }, (_, i) => row(i)), full: Array.from({ length: n }, (_, i) => row(n + i)) };
      check = checkAgreement([weft], await llamaBothContexts(model, c.threads, [{ prompt: promptOf(CHECK_PROMPT, job.shape.vocab, 2), tokens: ref.tokens }], ref.cols));
    }
    return { loadS, prefillTokS: promptLen / r.prefillS, decodeTokS: decodeTokens / r.decodeS, tokens: r.out, check, rssGb: rssGb(), rss: rssBreakdown() };
  } finally {
    await ctx.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

export async function child(job: ChildJob): Promise<void> {
  try {
    const r = job.trainedCheck
      ? { loadS: 0, prefillTokS: NaN, decodeTokS: NaN, tokens: [], rssGb: rssGb(), check: await trainedModelCheck(job.trainedCheck.modelDir, job.config.format, job.trainedCheck.ggufDir, 2) }
      : job.config.engine === 'weft' ? await childWeft(job) : await childLlama(job);
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
    // The result is out; a process that then lingers (live handles) or crashes on its way out is recorded, not waited on.
    setTimeout(() => {
      process.stderr.write('still alive 20 s after its result: exiting\n');
      process.exit(3);
    }, 20_000).unref();
  } catch (e) {
    process.stdout.write(`ERROR ${JSON.stringify({ message: String((e as Error).message ?? e).split('\n')[0], name: (e as Error).name })}\n`);
  }
}


export interface Outcome {
  result?: RunResult;
  error?: { message: string; name: string };
  exitCode: number | null;
  signal: string | null;
  wallS: number;
  stderrTail: string;
}

/** Runs one job in its own process (`entry --child <job>`); a hang is killed after 15 minutes. */
export function runChild(entry: string, job: ChildJob, verbose: boolean, extraEnv: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  if (job.config.backend === 'tensorflow') {
    // The same settings weft's launcher defaults to (commit 4107fb5: intra-op threads = cores ÷ ranks, inter-op 1,
    // Eigen, quiet log), spelled out so that the table does not depend on which build of the launcher is installed.
    env.TF_NUM_INTRAOP_THREADS ??= String(job.config.threads);
    env.TF_NUM_INTEROP_THREADS ??= '1';
    env.TF_ENABLE_ONEDNN_OPTS ??= '0';
    env.TF_CPP_MIN_LOG_LEVEL ??= verbose ? '0' : '2';
  }
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...process.execArgv, entry, '--child', Buffer.from(JSON.stringify(job)).toString('base64')], {
      env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
      if (verbose) process.stderr.write(d);
    });
    // A run that hangs (a spinning wait) must not stall the whole bench.
    const kill = setTimeout(() => p.kill('SIGKILL'), 15 * 60_000);
    p.on('close', (code, signal) => {
      clearTimeout(kill);
      const line = (tag: string) => out.split('\n').find((l) => l.startsWith(tag + ' '))?.slice(tag.length + 1);
      const r = line('RESULT');
      const e = line('ERROR');
      resolve({
        result: r ? (JSON.parse(r) as RunResult) : undefined,
        error: e ? JSON.parse(e) : !r ? { name: 'Crash', message: `exited ${code ?? signal} before a result: ${err.trim().split('\n').slice(-3).join(' | ')}` } : undefined,
        exitCode: code, signal, wallS: (performance.now() - t0) / 1000, stderrTail: err,
      });
    });
  });
}

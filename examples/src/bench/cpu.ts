/**
 * npm run bench:cpu — weft on the CPU (tensorflow and wasm backends, tp 1, tp 2,
 * pp 2) against node-llama-cpp 3.21.1 (its prebuilt CPU build, 1 and 2
 * threads) in one run on the same random weights, per weight format: weft's safetensors checkpoint loaded
 * with dtype / quantization (bf16: dtype 'bfloat16'; q8_0 / q4_0: quantization 'int8' / 'int4' with dtype
 * 'bfloat16'; f32: the default) and the same tensors written as GGUF in the same format (gguf-writer.ts:
 * the very Q8_0 / Q4_0 blocks weft makes at load). Two shapes: the
 * real TinyLlama-1.1B (hidden 2048, 22 layers, 32 heads, 4 KV heads) and a
 * 156 M Llama (hidden 1024, 8 layers). Prompt 128 tokens, 64 greedy decode
 * tokens; every configuration runs once per round, rounds alternate, each run
 * is its own child process (a fresh load; a crash at exit cannot take the bench
 * down). Medians with min–max. The decode bound comes from a native read
 * bandwidth probe (native-bandwidth.ts): decode reads every weight except the
 * input embedding once per token; this VM's bandwidth moves between minutes, so a probe also runs between every
 * two runs and each run is also set against the bandwidth of its own minutes. Each row's resident memory is broken down at the end of its run (rss.ts:
 * libtensorflow, node, file mappings, anonymous = weights + KV + the rest) beside its peak.
 *
 * Before timing, per format, two teacher-forced checks of weft against llama.cpp (agreement.ts: top-1
 * per step, KL divergence, the top-1 margins where they differ): on the trained model of the repo
 * (models/weft-tiny-code, real margins: its top-1s must agree), and on the bench's random shape after a
 * 16-token prompt, where logits are nearly flat — there weft's distance to llama.cpp is printed beside
 * weft's distance to itself (its step path against its full forward), the size of its rounding noise.
 *
 * usage: node examples/dist/bench/cpu.js [--shape small|tinyllama|all] [--formats bf16,q8_0,q4_0] [--rounds 3] [--prompt 128] [--decode 64]
 *          [--only weft-tensorflow,weft-wasm,llama.cpp] [--out bench-results/cpu.json] [--dir DIR] [--verbose]
 *          [--onednn] [--no-check] [--bandwidth 28.1,33.6]
 * --bandwidth: GB/s at 1 and 2 threads for the bound, instead of the probe's figures of this run (on a shared,
 * busy machine the probe reads what the other tenants leave; give the idle machine's figures).
 */
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeCheck } from './agreement-check.js';
import { child, runChild, type CheckResult, type ChildJob, type Outcome, type RunResult } from './cpu-child.js';
import { CONFIGS, CORES, CPU_SHAPES, FORMATS, decodeBytes, readers, type Config } from './cpu-configs.js';
import { llamaCheckpointToGguf, type GgufFormat } from './gguf-writer.js';
import { measureNativeBandwidth } from './native-bandwidth.js';
import { hasRandomLlama, paramCount, writeRandomLlama } from './random-checkpoint.js';
import { median } from './stats.js';

/** The trained model of the repo (from examples/src/bench or examples/dist/bench). */
const TRAINED_MODEL = join(dirname(fileURLToPath(import.meta.url)), '../../../models/weft-tiny-code');

const checkText = describeCheck;

/** RSS columns of a row: the end-of-run breakdown and (RSS − KV written) ÷ weight bytes, at the end and at the peak. */
function rssColumns(results: RunResult[], weightBytes: number): Record<string, unknown> {
  const r = results.find((x) => x.rss)?.rss;
  if (!r) return {};
  const kv = results[0]!.kvWrittenBytes ?? 0;
  const g = (x: number) => (x / 1e9).toFixed(2);
  return {
    rss_end_gb: +(r.rss / 1e9).toFixed(2),
    rss_ratio_end: +((r.rss - kv) / weightBytes).toFixed(2),
    rss_ratio_peak: +((Math.max(...results.map((x) => x.rssGb)) * 1e9 - kv) / weightBytes).toFixed(2),
    kv_written_gb: +(kv / 1e9).toFixed(3),
    rss_parts_gb: { libtensorflow: +g(r.tensorflowLib), node: +g(r.nodeBinary), otherFiles: +g(r.otherFiles), anonymous: +g(r.anonymous) },
    rss_breakdown: `end ${g(r.rss)} (peak ${g(r.peak)}) = libtensorflow ${g(r.tensorflowLib)} + node ${g(r.nodeBinary)} + other files ${g(r.otherFiles)} + anonymous ${g(r.anonymous)} ; weights ${g(weightBytes)}, KV ≤ ${g(kv)}, the rest ${g(r.rss - r.tensorflowLib - r.nodeBinary - weightBytes - kv)}`,
  };
}

const stats = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const range = (s: { median: number; min: number; max: number }) => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;

async function parent(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      shape: { type: 'string', default: 'tinyllama' },
      formats: { type: 'string', default: 'bf16,q8_0,q4_0' },
      rounds: { type: 'string', default: '3' },
      prompt: { type: 'string', default: '128' },
      decode: { type: 'string', default: '64' },
      only: { type: 'string' },
      out: { type: 'string', default: 'bench-results/cpu.json' },
      dir: { type: 'string', default: join(tmpdir(), 'weft-bench-cpu') },
      'no-check': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      /** TF_ENABLE_ONEDNN_OPTS=1 for weft's tensorflow ranks (weft's default is Eigen). */
      onednn: { type: 'boolean', default: false },
      bandwidth: { type: 'string' },
    },
  });
  const tfEnv: NodeJS.ProcessEnv = { ...(v.onednn ? { TF_ENABLE_ONEDNN_OPTS: '1' } : {}) };
  for (const k of ['TF_ENABLE_ONEDNN_OPTS', 'TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS']) if (process.env[k] !== undefined) tfEnv[k] ??= process.env[k];
  const started = performance.now();
  const elapsed = () => {
    const s = Math.round((performance.now() - started) / 1000);
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  };
  const log = (m: string) => process.stderr.write(`[bench:cpu ${elapsed()}] ${m}\n`);
  const shapeNames = v.shape === 'all' ? Object.keys(CPU_SHAPES) : String(v.shape).split(',');
  for (const n of shapeNames) if (!CPU_SHAPES[n]) throw new Error(`unknown shape '${n}' (have ${Object.keys(CPU_SHAPES).join(', ')}, all)`);
  const rounds = Number(v.rounds);
  const promptLen = Number(v.prompt);
  const decodeTokens = Number(v.decode);
  const only = v.only ? String(v.only).split(',') : ['weft tensorflow tp1', 'weft tensorflow tp2', 'weft tensorflow tfjs path', 'llama.cpp'];
  const formats = String(v.formats).split(',') as GgufFormat[];
  for (const f of formats) if (!FORMATS.includes(f)) throw new Error(`unknown format '${f}' (have ${FORMATS.join(', ')})`);
  const configs = CONFIGS.filter((c) => formats.includes(c.format) && only.some((o) => c.id.startsWith(o.replaceAll('-', ' '))));
  const loadBefore = loadavg();

  log(`machine: ${cpus()[0]?.model ?? '?'}, ${CORES} cores, ${(totalmem() / 1e9).toFixed(0)} GB, load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')}`);
  // Bandwidth is measured at the start and again at the end; the bound uses the better of the two (the
  // hardware's, less whatever the other tenants of the machine took at the time).
  log('native read bandwidth (1 and 2 threads)');
  const bwStart = measureNativeBandwidth([1, 2]);
  const bwText = (b: typeof bwStart) => (b.gbPerS ? `${b.gbPerS[1]!.toFixed(1)} GB/s (1 thread), ${b.gbPerS[2]!.toFixed(1)} GB/s (2 threads)` : b.how);
  log(`read bandwidth ${bwText(bwStart)}; ${bwStart.how}`);

  // Checkpoints: safetensors (bf16, weft's random-checkpoint writer) and the same values as GGUF, one file per format.
  const paths: Record<string, { dir: string; gguf: Partial<Record<GgufFormat, string>>; ggufBytes: Partial<Record<GgufFormat, number>> }> = {};
  for (const name of shapeNames) {
    const shape = CPU_SHAPES[name]!;
    const dir = join(String(v.dir), `${name}-${shape.layers}l-${shape.kvHeads}kv`);
    if (!hasRandomLlama(dir)) writeRandomLlama(dir, shape, log);
    paths[name] = { dir, gguf: {}, ggufBytes: {} };
    for (const f of formats) {
      const gguf = join(dir, `model-${f}.gguf`);
      if (!existsSync(gguf)) {
        llamaCheckpointToGguf(dir, gguf + '.partial', log, f);
        renameSync(gguf + '.partial', gguf);
      }
      paths[name]!.gguf[f] = gguf;
      paths[name]!.ggufBytes[f] = statSync(gguf).size;
    }
  }

  const checks: Record<string, CheckResult | string> = {};
  // The trained model's check per format (its own child process; a few seconds): weft must agree there.
  if (!v['no-check'])
    for (const f of formats) {
      const c = CONFIGS.find((x) => x.format === f && x.id.startsWith('weft tensorflow tp1'))!;
      const shape = CPU_SHAPES[shapeNames[0]!]!;
      const job: ChildJob = { config: c, shape, dir: TRAINED_MODEL, gguf: '', promptLen, decodeTokens, trainedCheck: { modelDir: TRAINED_MODEL, ggufDir: join(String(v.dir), 'weft-tiny-code') } };
      const o = await runChild(fileURLToPath(import.meta.url), job, Boolean(v.verbose), tfEnv);
      const k = `weft-tiny-code (trained) ${f}`;
      checks[k] = o.result?.check ?? `failed: ${o.error?.message ?? 'no result'}`;
      log(`${k} check: ${typeof checks[k] === 'string' ? checks[k] : checkText(checks[k] as CheckResult)}`);
    }

  type Key = string;
  const key = (shape: string, c: Config): Key => `${shape}|${c.id}`;
  /** The node-llama-cpp configuration a format's check and token agreement use: its most threads in this run. */
  const checkLlama = (format: GgufFormat) => configs.filter((x) => x.engine === 'llama.cpp' && x.format === format).sort((a, b) => b.threads - a.threads)[0];
  const runs = new Map<Key, Outcome[]>();
  /** Per finished run: the read bandwidth around it (GB/s at its reader count, the better of the probes just before and just after). */
  const adjacentBw = new Map<Outcome, number>();
  // This VM's read bandwidth moves between minutes (40–80 GB/s at 2 threads seen, as its vCPUs move between the host's
  // dies): a probe between every two runs gives each run the bound of its own minutes beside the run's best probe.
  const probe = () => measureNativeBandwidth([1, 2], 256, 3).gbPerS;
  let lastProbe: ReturnType<typeof probe> = null;
  const refused = new Map<Key, string>();
  const exitProblems: string[] = [];
  const total = rounds * shapeNames.length * configs.length;
  let done = 0;
  for (let round = 1; round <= rounds; round++) {
    for (const name of shapeNames) {
      const shape = CPU_SHAPES[name]!;
      // Alternate the order inside a round too, so that no configuration always runs after the same one.
      for (const c of round % 2 ? configs : [...configs].reverse()) {
        done++;
        const k = key(name, c);
        if (refused.has(k)) continue;
        const checkFile = join(paths[name]!.dir, `check-${process.pid}-${c.format}`);
        // The first round a format runs: its first weft configuration writes check logits; llama.cpp 2 threads compares.
        const firstWeft = configs.find((x) => x.engine === 'weft' && x.format === c.format && !refused.has(key(name, x)));
        const doCheck = !v['no-check'] && !checks[`${name} ${c.format}`] && (c === firstWeft || (c === checkLlama(c.format) && existsSync(checkFile + '.json')));
        const job: ChildJob = { config: c, shape, dir: paths[name]!.dir, gguf: paths[name]!.gguf[c.format]!, promptLen, decodeTokens, checkFile: doCheck ? checkFile : undefined };
        log(`round ${round}/${rounds} [${done}/${total}] ${name} ${c.id}: running`);
        const before = lastProbe ?? probe();
        const o = await runChild(fileURLToPath(import.meta.url), job, Boolean(v.verbose), c.backend === 'tensorflow' ? tfEnv : {});
        lastProbe = probe();
        const nr = Math.min(readers(c), 2);
        if (before && lastProbe) adjacentBw.set(o, Math.max(before[nr]!, lastProbe[nr]!));
        if (o.error && !o.result) {
          if (/does not fit|over what one wasm rank holds|wasm rank/i.test(o.error.message) || o.error.name === 'ConfigError') {
            refused.set(k, o.error.message);
            log(`  ${name} ${c.id}: does not fit — ${o.error.message}`);
          } else {
            log(`  ${name} ${c.id}: FAILED (${o.error.name}) ${o.error.message}`);
            (runs.get(k) ?? runs.set(k, []).get(k)!).push(o);
          }
          continue;
        }
        if (o.exitCode !== 0) exitProblems.push(`${name} ${c.id} round ${round}: result printed, then exit ${o.exitCode ?? o.signal}`);
        (runs.get(k) ?? runs.set(k, []).get(k)!).push(o);
        const r = o.result!;
        if (r.check) checks[`${name} ${c.format}`] = r.check;
        log(`  ${name} ${c.id}: load ${r.loadS.toFixed(1)} s, prefill ${fmt(r.prefillTokS)} tok/s, decode ${fmt(r.decodeTokS)} tok/s (run ${o.wallS.toFixed(0)} s${o.exitCode === 0 ? '' : `, exit ${o.exitCode ?? o.signal}`})`);
        // A long run that is cut short still leaves every run it finished.
        summarize(round, bwStart, null, false);
        if (r.check) log(`  ${name} ${c.format} check: ${checkText(r.check)}`);
      }
      for (const f of formats)
        if (round === rounds && !v['no-check'] && !checks[`${name} ${f}`]) checks[`${name} ${f}`] = 'not run (needs a weft configuration and a node-llama-cpp one)';
    }
    const left = ((performance.now() - started) / done) * (total - done);
    log(`round ${round} done; about ${Math.ceil(left / 60000)} min left`);

  }
  for (const name of shapeNames) for (const f of formats) for (const ext of ['.json', '.bin']) rmSync(join(paths[name]!.dir, `check-${process.pid}-${f}${ext}`), { force: true });
  log('native read bandwidth again');
  const bwEnd = measureNativeBandwidth([1, 2]);
  log(`read bandwidth ${bwText(bwEnd)}`);
  summarize(rounds, bwStart, bwEnd, true);

  function summarize(roundsDone: number, bwStart: ReturnType<typeof measureNativeBandwidth>, bwEnd: ReturnType<typeof measureNativeBandwidth> | null, final: boolean): void {
  const loadAfter = loadavg();
  const given = v.bandwidth ? String(v.bandwidth).split(',').map(Number) : null;
  const bw = given
    ? { how: `given with --bandwidth (${given.join(', ')} GB/s)`, gbPerS: { 1: given[0]!, 2: given[1] ?? given[0]! } }
    : { how: bwStart.how, gbPerS: bwStart.gbPerS && bwEnd?.gbPerS ? { 1: Math.max(bwStart.gbPerS[1]!, bwEnd.gbPerS[1]!), 2: Math.max(bwStart.gbPerS[2]!, bwEnd.gbPerS[2]!) } : bwStart.gbPerS };

  // Summaries.
  const rows = shapeNames.flatMap((name) => {
    const shape = CPU_SHAPES[name]!;
    const okRuns = (c: Config) => (runs.get(key(name, c)) ?? []).filter((o) => o.result);
    return configs.map((c) => {
      const k = key(name, c);
      // The reference: node-llama-cpp on the same format at its best thread count (separately for prefill and decode).
      const refs = configs.filter((x) => x.engine === 'llama.cpp' && x.format === c.format).map(okRuns).filter((os) => os.length);
      const refPrefill = refs.length ? Math.max(...refs.map((os) => median(os.map((o) => o.result!.prefillTokS)))) : NaN;
      const refDecode = refs.length ? Math.max(...refs.map((os) => median(os.map((o) => o.result!.decodeTokS)))) : NaN;
      const ref = checkLlama(c.format);
      const refTokens = ref ? okRuns(ref)[0]?.result?.tokens : undefined;
      const base = { shape: name, params_m: +(paramCount(shape) / 1e6).toFixed(0), config: c.id, format: c.format, engine: c.engine, backend: c.backend ?? null, tp: c.tp, pp: c.pp, threads: c.threads };
      if (refused.has(k)) return { ...base, status: 'does not fit', reason: refused.get(k) };
      const ok = okRuns(c);
      const failed = (runs.get(k) ?? []).filter((o) => !o.result);
      if (!ok.length) return { ...base, status: 'failed', reason: failed[0]?.error?.message ?? 'not run' };
      const prefill = stats(ok.map((o) => o.result!.prefillTokS));
      const decode = stats(ok.map((o) => o.result!.decodeTokS));
      const step = ok[0]!.result!.stepPath ?? null;
      const bytes = decodeBytes(shape, c, ok[0]!.result, paths[name]!.ggufBytes[c.format]!);
      const gbs = bw.gbPerS ? (bw.gbPerS as Record<number, number>)[Math.min(readers(c), 2)] : undefined;
      const bound = gbs ? (gbs * 1e9) / bytes : null;
      // Each run against the bandwidth of its own minutes (adjacentBw), median over the runs.
      const adjacent = ok.filter((o) => adjacentBw.has(o)).map((o) => ({ bound: (adjacentBw.get(o)! * 1e9) / bytes, ratio: o.result!.decodeTokS / ((adjacentBw.get(o)! * 1e9) / bytes) }));
      const toks = ok[0]!.result!.tokens;
      const agree = refTokens && c.engine === 'weft' ? toks.findIndex((t, i) => t !== refTokens[i]) : -2;
      const weightBytes = ok[0]!.result!.weightBytesPerRank?.reduce((x, y) => x + y, 0) ?? paths[name]!.ggufBytes[c.format]!;
      return {
        ...base, status: 'ok', step, runs: ok.length, failed_runs: failed.length,
        prefill_tok_s: prefill, decode_tok_s: decode,
        load_s: stats(ok.map((o) => o.result!.loadS)),
        decode_gb_per_token: +(bytes / 1e9).toFixed(3),
        bound_tok_s: bound, readers: Math.min(readers(c), 2), decode_to_bound: bound ? decode.median / bound : null,
        adjacent_bound_tok_s: adjacent.length ? stats(adjacent.map((a) => a.bound)) : null,
        decode_to_adjacent_bound: adjacent.length ? stats(adjacent.map((a) => a.ratio)) : null,
        prefill_vs_llama_cpp_best: prefill.median / refPrefill, decode_vs_llama_cpp_best: decode.median / refDecode,
        tokens_equal_to_llama_cpp_2t: agree === -2 ? null : agree === -1 ? toks.length : agree,
        weight_gb: +(weightBytes / 1e9).toFixed(3),
        weight_gb_per_rank: ok[0]!.result!.weightBytesPerRank?.map((b) => +(b / 1e9).toFixed(3)) ?? null,
        rss_gb: +Math.max(...ok.map((o) => o.result!.rssGb)).toFixed(2),
        ...rssColumns(ok.map((o) => o.result!), weightBytes),
        nonzero_exits: ok.filter((o) => o.exitCode !== 0).length,
      };
    });
  });

  const out = final ? console.log : () => {};
  out(`\nCPU: ${cpus()[0]?.model ?? '?'}, ${CORES} cores; prompt ${promptLen} tokens, ${decodeTokens} decode tokens, ${rounds} rounds, medians (min–max); bound from ${bwText(bw)} (${bw.how}; measured this run: start ${bwText(bwStart)}${bwEnd ? `, end ${bwText(bwEnd)}` : ''}); "of its minutes": each run against the better of the probes just before and after it (3 reps each), median (min–max) over its runs`);
  out(`load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${loadAfter.map((x) => x.toFixed(2)).join(' ')} after\n`);
  out('| shape | format | engine | layout | prefill tok/s | decode tok/s | GB read / token | decode bound | decode / bound | decode / bound of its minutes | prefill / nlc best | decode / nlc best | weights GB | RSS GB end (peak) | (RSS − KV) / weights end (peak) |');
  out('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows as Record<string, any>[]) {
    const plan = typeof r.step === 'string' && r.step.startsWith('plan');
    const threads = plan ? `${Math.max(1, Math.floor(CORES / (r.tp * r.pp)))} kernel thread(s)/rank` : `${r.threads} TF thread${r.threads > 1 ? 's' : ''}/rank`;
    const layout = r.engine === 'llama.cpp' ? `${r.threads} thread${r.threads > 1 ? 's' : ''}` : `tp ${r.tp} pp ${r.pp}, ${r.step ?? ''}${r.backend === 'tensorflow' ? `, ${threads}` : ''}`;
    const engine = r.engine === 'llama.cpp' ? 'node-llama-cpp 3.21.1' : `weft ${r.backend}`;
    const label = `${CPU_SHAPES[r.shape]!.name === 'small' ? '156 M' : 'TinyLlama-1.1B'}`;
    if (r.status !== 'ok') {
      out(`| ${label} | ${r.format} | ${engine} | ${layout} | ${r.status}: ${String(r.reason).slice(0, 80)} | — | — | — | — | — | — | — | — | — | — |`);
      continue;
    }
    out(`| ${label} | ${r.format} | ${engine} | ${layout} | ${range(r.prefill_tok_s)} | ${range(r.decode_tok_s)} | ${r.decode_gb_per_token.toFixed(2)} | ${r.bound_tok_s ? fmt(r.bound_tok_s) : '—'} | ${r.decode_to_bound ? r.decode_to_bound.toFixed(2) : '—'} | ${r.decode_to_adjacent_bound ? `${r.decode_to_adjacent_bound.median.toFixed(2)} (${r.decode_to_adjacent_bound.min.toFixed(2)}–${r.decode_to_adjacent_bound.max.toFixed(2)})` : '—'} | ${r.prefill_vs_llama_cpp_best.toFixed(2)} | ${r.decode_vs_llama_cpp_best.toFixed(2)} | ${r.weight_gb.toFixed(2)} | ${r.rss_end_gb?.toFixed(2) ?? '—'} (${r.rss_gb.toFixed(2)}) | ${r.rss_ratio_end?.toFixed(2) ?? '—'} (${r.rss_ratio_peak?.toFixed(2) ?? '—'}) |`);
  }
  out('\nResident memory at the end of each run (GB; the first run of each row): libtensorflow* (mapped, touched), the node binary, other file mappings (node-llama-cpp: its mmapped GGUF), anonymous (heaps of every isolate, ArrayBuffers: weights and KV, malloc); KV: the most the run wrote (weft fp32 K/V, every request counted whole).');
  for (const r of rows as Record<string, any>[]) if (r.status === 'ok' && r.rss_breakdown) out(`- ${r.shape} ${r.config}: ${r.rss_breakdown}`);
  for (const [name, c] of Object.entries(checks)) {
    if (typeof c === 'string') out(`\n${name}: weft vs llama.cpp check ${c}`);
    else out(`\n${name}: ${checkText(c)}`);
  }
  for (const [k, m] of refused) out(`${k.replace('|', ' ')}: does not fit — ${m}`);
  for (const p of exitProblems) out(`exit: ${p}`);

  const json = {
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? null, cores: CORES, total_gb: +(totalmem() / 1e9).toFixed(1), load_before: loadBefore, load_after: loadAfter, node: process.version },
    bandwidth_gb_s: bw.gbPerS, bandwidth_start_gb_s: bwStart.gbPerS, bandwidth_end_gb_s: bwEnd?.gbPerS ?? null, bandwidth_probe: bw.how,
    prompt_tokens: promptLen, decode_tokens: decodeTokens, rounds, rounds_reached: roundsDone, partial: !final,
    shapes: Object.fromEntries(shapeNames.map((n) => [n, { ...CPU_SHAPES[n], params: paramCount(CPU_SHAPES[n]!), gguf_bytes: paths[n]!.ggufBytes }])),
    formats,
    tf_env: { ...Object.fromEntries(Object.entries(tfEnv).filter(([k]) => k.startsWith('TF_'))), defaults: 'TF_NUM_INTRAOP_THREADS = cores ÷ ranks, TF_NUM_INTEROP_THREADS = 1, TF_ENABLE_ONEDNN_OPTS = 0 (weft\'s launcher defaults)' },
    llm_from: [...new Set([...runs.values()].flat().map((o) => o.result?.llmFrom).filter(Boolean))],
    checks, exit_problems: exitProblems, rows,
    raw: Object.fromEntries([...runs].map(([k, os]) => [k, os.map((o) => ({ ...o.result, tokens: undefined, error: o.error, exitCode: o.exitCode, signal: o.signal, wallS: o.wallS }))])),
    elapsed_s: (performance.now() - started) / 1000,
  };
  mkdirSync(dirname(String(v.out)), { recursive: true });
  writeFileSync(String(v.out), JSON.stringify(json, null, 2));
  if (final) log(`wrote ${v.out}`);
  }
}

const childArg = process.argv.indexOf('--child');
if (childArg >= 0) await child(JSON.parse(Buffer.from(process.argv[childArg + 1]!, 'base64').toString()) as ChildJob);
else await parent();

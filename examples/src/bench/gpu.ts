/**
 * npm run bench:gpu — on the GPU machine: a TinyLlama-1.1B-shaped Llama with
 * random weights, weft on webgpu (prefill of one long prompt, greedy decode at
 * batch 1 and 16) against Hugging Face transformers eager (fp32, bf16) on the
 * same safetensors, in one run, with the bandwidth bound. weft runs once per
 * variant (stock tfjs kernels, weft's kernels through two dispatch paths and
 * submit batches), and each weft kernel is timed against the stock ops it
 * replaces (kernel-profile.ts).
 *
 * usage: node examples/dist/bench/gpu.js [--prompt 512] [--decode 32] [--batches 1,16]
 *          [--torch python3] [--no-torch] [--kernels-only] [--no-profile] [--layers 22] [--out bench-results/gpu.json]
 *          [--plan-formats bf16,q4_0,fp32] [--plan-check DIR]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type BackendName } from '@weft/core';
import { LLM } from '@weft/engine';
import { benchPlan, checkPlan, type PlanBenchRow } from './gpu-plan.js';
import { profileKernels } from './kernel-profile.js';
import { hasRandomLlama, paramCount, writeRandomLlama, type LlamaShape } from './random-checkpoint.js';
import { median } from './stats.js';

const { values: v } = parseArgs({
  options: {
    backend: { type: 'string', default: 'webgpu' },
    prompt: { type: 'string', default: '512' },
    decode: { type: 'string', default: '32' },
    batches: { type: 'string', default: '1,16' },
    layers: { type: 'string', default: '22' },
    /** 'smoke': a small shape (hidden 256, 2 layers) to try the bench where there is no GPU. */
    shape: { type: 'string', default: 'tinyllama' },
    dir: { type: 'string' },
    torch: { type: 'string', default: 'python3' },
    'no-torch': { type: 'boolean', default: false },
    /** transformers results already measured by scripts/gpu/torch_bench.py (its stdout). */
    'torch-json': { type: 'string' },
    'no-profile': { type: 'boolean', default: false },
    /** Skip the stock-kernel pass of weft. */
    'kernels-only': { type: 'boolean', default: false },
    /** weft through tfjs: 'all' variants (stock kernels, dispatch paths, submit batches), 'default' (weft kernels), 'none'. */
    'tfjs-variants': { type: 'string', default: 'all' },
    'write-only': { type: 'boolean', default: false },
    'bandwidth-tb-s': { type: 'string', default: '4.8' },
    out: { type: 'string', default: 'bench-results/gpu.json' },
    /** The device plan on the WebGPU executor with these weight formats (fp32, bf16, q8_0, q4_0); '' skips it. */
    'plan-formats': { type: 'string', default: 'bf16,q4_0,fp32' },
    /** Only check the device plan on the WebGPU executor against the Llama fixtures in this folder, write --out, exit 1 on a mismatch. */
    'plan-check': { type: 'string' },
  },
});
if (v['plan-check']) {
  const checked = await checkPlan(String(v['plan-check']), (m) => process.stderr.write(`[plan-check] ${m}\n`));
  const bad = checked.filter((r) => !r.pass);
  console.log(`weft device plan parity on webgpu: ${checked.length - bad.length}/${checked.length} pass`);
  mkdirSync(dirname(String(v.out)), { recursive: true });
  writeFileSync(String(v.out), JSON.stringify({ date: new Date().toISOString(), rows: checked }, null, 1));
  process.exit(bad.length ? 1 : 0);
}
const log = (m: string) => process.stderr.write(`[bench:gpu] ${m}\n`);
const backend = v.backend as BackendName;
const promptLen = Number(v.prompt);
const decodeTokens = Number(v.decode);
const batches = String(v.batches).split(',').map(Number);
const bandwidth = Number(v['bandwidth-tb-s']) * 1e12;

// TinyLlama-1.1B: 22 layers, 32 heads, 4 KV heads (GQA 8:1).
const shape: LlamaShape =
  v.shape === 'smoke'
    ? { name: 'smoke', hidden: 256, layers: 2, heads: 4, kvHeads: 2, intermediate: 512, vocab: 1000 }
    : { name: 'tinyllama-1.1b', hidden: 2048, layers: Number(v.layers), heads: 32, kvHeads: 4, intermediate: 5632, vocab: 32000 };
const params = paramCount(shape);
const dir = v.dir ?? join(tmpdir(), `weft-bench-${shape.name}-${shape.layers}l`);
if (!hasRandomLlama(dir)) writeRandomLlama(dir, shape, log);
if (v['write-only']) process.exit(0);

const promptOf = (len: number, salt: number) => Array.from({ length: len }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (shape.vocab - 3)));
const rows: Record<string, unknown>[] = [];

// --- weft: tfjs's stock WebGPU kernels, then weft's own (same run, same weights) ---
const weftDecodeMsPerStep: Record<string, Record<number, number>> = {};
let loadS = 0;
// Each variant is a fresh load: worker ranks copy the environment when they start.
// The last is weft's default (weft kernels, lean dispatch, tfjs's submit every 15 dispatches).
const variants: [string, Record<string, string>][] = [
  ['stock tfjs kernels', { WEFT_WEBGPU_KERNELS: '0', WEFT_WEBGPU_SUBMIT_BATCH: '15' }],
  ['weft kernels via runWebGPUProgram, submit 15', { WEFT_WEBGPU_KERNELS: '1', WEFT_WEBGPU_LEAN: '0', WEFT_WEBGPU_SUBMIT_BATCH: '15' }],
  ['weft kernels, lean dispatch, submit 64', { WEFT_WEBGPU_KERNELS: '1', WEFT_WEBGPU_LEAN: '1', WEFT_WEBGPU_SUBMIT_BATCH: '64' }],
  ['weft kernels, lean dispatch, submit 8', { WEFT_WEBGPU_KERNELS: '1', WEFT_WEBGPU_LEAN: '1', WEFT_WEBGPU_SUBMIT_BATCH: '8' }],
  ['weft kernels', { WEFT_WEBGPU_KERNELS: '1', WEFT_WEBGPU_LEAN: '1', WEFT_WEBGPU_SUBMIT_BATCH: '15' }],
];
// --- the device plan on weft's WebGPU executor (no tfjs), per weight format ---
const planRows: PlanBenchRow[] = [];
const planFormats = String(v['plan-formats']).split(',').filter(Boolean);
if (backend === 'webgpu' && planFormats.length) {
  planRows.push(...(await benchPlan({ dir, formats: planFormats, batches, promptLen, decodeTokens, bandwidth, log })));
  rows.push(...(planRows as unknown as Record<string, unknown>[]));
}
const tfjsVariants = v['tfjs-variants'] === 'none' ? [] : backend === 'webgpu' && !v['kernels-only'] && v['tfjs-variants'] === 'all' ? variants : variants.slice(-1);
for (const [label, env] of tfjsVariants) await benchWeft(label, env);
for (const k of Object.keys(variants[0]![1])) delete process.env[k];

async function benchWeft(label: string, env: Record<string, string>): Promise<void> {
  Object.assign(process.env, env);
  log(`weft on ${backend} (${label}), tp=1: loading ${(params / 1e6).toFixed(0)} M parameters`);
  let t0 = performance.now();
  // The tfjs path (with weft's kernels); the device plan has its own rows above.
  const llm = await LLM.load(dir, { tp: 1, backend, timeoutMs: 600_000, devicePlan: false });
  loadS = (performance.now() - t0) / 1000;
  log(`loaded in ${loadS.toFixed(1)} s`);
  const perStep: Record<number, number> = (weftDecodeMsPerStep[label] = {});
  try {
    const prompt = promptOf(promptLen, 0);
    // Warm-up compiles every shader these shapes need (WebGPU pipelines are built on first use).
    await llm.generate([prompt], { maxTokens: 2, ignoreEos: true });
    const prefills: number[] = [];
    for (let r = 0; r < 3; r++) {
      t0 = performance.now();
      await llm.generate([promptOf(promptLen, r + 1)], { maxTokens: 1, ignoreEos: true });
      prefills.push((performance.now() - t0) / 1000);
    }
    const prefillS = median(prefills);
    for (const b of batches) {
      const prompts = Array.from({ length: b }, (_, i) => promptOf(8, i + 7));
      await llm.generate(prompts, { maxTokens: decodeTokens + 1, ignoreEos: true }); // warm-up at this batch
      t0 = performance.now();
      await llm.generate(prompts, { maxTokens: decodeTokens + 1, ignoreEos: true });
      const longS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      await llm.generate(prompts, { maxTokens: 1, ignoreEos: true });
      const oneS = (performance.now() - t0) / 1000;
      const decodeS = Math.max(1e-9, longS - oneS);
      perStep[b] = (decodeS * 1000) / decodeTokens;
      const row = { engine: `weft ${backend} fp32, ${label}`, dtype: 'float32', batch: b, prefill_tok_s: +(promptLen / prefillS).toFixed(1), decode_tok_s: +((b * decodeTokens) / decodeS).toFixed(2) };
      rows.push(row);
      log(JSON.stringify(row));
    }
  } finally {
    await llm.close();
  }
}

// --- each kernel before (tfjs's stock ops) and after (weft's kernel), at the shapes of one batch-1 decode step ---
let profile: Record<string, unknown> | null = null;
if (!v['no-profile'] && backend === 'webgpu') {
  log('timing each kernel against the stock ops it replaces, in this thread');
  profile = await profileKernels({ ...shape, headDim: shape.hidden / shape.heads, context: promptLen }, log);
}

// --- transformers on PyTorch, same weights ---
let torchInfo: Record<string, unknown> | null = null;
if (v['torch-json']) {
  try {
    torchInfo = JSON.parse(readFileSync(String(v['torch-json']), 'utf8').trim().split('\n').pop()!) as Record<string, unknown>;
    rows.push(...(torchInfo.rows as Record<string, unknown>[]));
  } catch (e) {
    log(`cannot read --torch-json ${v['torch-json']}: ${(e as Error).message}`);
  }
} else if (!v['no-torch']) {
  const script = fileURLToPath(new URL('../../../scripts/gpu/torch_bench.py', import.meta.url));
  log(`running ${v.torch} ${script}`);
  const r = spawnSync(String(v.torch), [script, '--model', dir, '--prompt', String(promptLen), '--decode', String(decodeTokens), '--batches', batches.join(',')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    torchInfo = JSON.parse(line) as Record<string, unknown>;
    rows.push(...(torchInfo.rows as Record<string, unknown>[]));
  } catch {
    log(`transformers bench failed (exit ${r.status}): ${line.slice(0, 500)}`);
  }
}

// --- the physical bound: every weight read once per decode step ---
const boundFp32 = bandwidth / (params * 4);
const boundBf16 = bandwidth / (params * 2);
for (const b of batches) {
  rows.push({ engine: `bound: fp32 weights ÷ ${v['bandwidth-tb-s']} TB/s`, dtype: 'float32', batch: b, prefill_tok_s: null, decode_tok_s: +(b * boundFp32).toFixed(0) });
}
rows.push({ engine: `bound: bf16 weights ÷ ${v['bandwidth-tb-s']} TB/s`, dtype: 'bfloat16', batch: 1, prefill_tok_s: null, decode_tok_s: +boundBf16.toFixed(0) });

const ratios: Record<string, unknown>[] = [];
for (const b of batches) {
  const weft = rows.find((r) => String(r.engine).endsWith(', weft kernels') && r.batch === b);
  for (const other of rows.filter((r) => String(r.engine).startsWith('transformers') && r.batch === b)) {
    if (!weft) continue;
    ratios.push({
      batch: b,
      vs: other.engine,
      prefill: +((weft.prefill_tok_s as number) / (other.prefill_tok_s as number)).toFixed(3),
      decode: +((weft.decode_tok_s as number) / (other.decode_tok_s as number)).toFixed(3),
    });
  }
  if (weft) ratios.push({ batch: b, vs: 'fp32 bandwidth bound', prefill: null, decode: +((weft.decode_tok_s as number) / (b * boundFp32)).toFixed(4) });
  for (const st of planRows.filter((r) => r.batch === b)) {
    for (const other of rows.filter((r) => String(r.engine).startsWith('transformers') && r.batch === b)) {
      ratios.push({
        weft: st.engine,
        batch: b,
        vs: other.engine,
        prefill: other.prefill_tok_s ? +(st.prefill_tok_s / (other.prefill_tok_s as number)).toFixed(3) : null,
        decode: +(st.decode_tok_s / (other.decode_tok_s as number)).toFixed(3),
      });
    }
    // The bound of this format's own bytes (every linear weight read once a step).
    ratios.push({ weft: st.engine, batch: b, vs: `${st.dtype} bandwidth bound (${st.weight_gb} GB a step)`, prefill: null, decode: +(st.decode_tok_s / b / (bandwidth / (st.weight_gb * 1e9))).toFixed(4) });
  }
}

console.log(`\nTinyLlama-1.1B shape (${(params / 1e6).toFixed(0)} M parameters, random weights), prompt ${promptLen}, ${decodeTokens} decode tokens\n`);
console.log('| engine | batch | prefill tok/s | decode tok/s |\n| --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${String(r.engine)} | ${String(r.batch)} | ${r.prefill_tok_s ?? '—'} | ${r.decode_tok_s} |`);
console.log('\nweft ÷ other\n\n| weft | batch | vs | prefill | decode |\n| --- | --- | --- | --- | --- |');
for (const r of ratios) console.log(`| ${String(r.weft ?? 'tfjs path, weft kernels')} | ${String(r.batch)} | ${String(r.vs)} | ${r.prefill ?? '—'} | ${String(r.decode)} |`);
if (planRows.length) {
  console.log('\nweft device plan on WebGPU, per decode step\n\n| weights | batch | dispatches | step ms (read back) | median step ms | longest step ms (#, V8 collections in it ms) | GPU ms | encode ms | host overhead ms | bandwidth fraction |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of planRows) console.log(`| ${r.dtype} | ${r.batch} | ${r.dispatches_per_step} | ${r.step_ms} | ${r.step_ms_median} | ${r.step_ms_max} (#${r.step_max_index}, ${r.step_max_gc_ms}) | ${r.gpu_step_ms} | ${r.encode_ms} | ${r.host_overhead_ms} | ${r.bandwidth_fraction} |`);
  console.log(`\nV8's collections in each decode loop: ${JSON.stringify(Object.fromEntries(planRows.map((r) => [`${r.dtype}/${r.batch}`, r.gc_in_decode])))}`);
  const tags = Object.keys(planRows[0]!.kernel_us);
  console.log(`\nµs per decode step by kernel (each class alone)\n\n| weights | batch | ${tags.join(' | ')} |\n| --- | --- | ${tags.map(() => '---').join(' | ')} |`);
  for (const r of planRows) console.log(`| ${r.dtype} | ${r.batch} | ${tags.map((t) => r.kernel_us[t] ?? '—').join(' | ')} |`);
  const ptags = Object.keys(planRows[0]!.prefill_kernel_us);
  console.log(`\nµs per ${promptLen}-token prefill step by kernel (each class alone; ${planRows[0]!.prefill_dispatches} dispatches)\n\n| weights | ${ptags.join(' | ')} |\n| --- | ${ptags.map(() => '---').join(' | ')} |`);
  for (const r of planRows.filter((x) => x.batch === batches[0])) console.log(`| ${r.dtype} | ${ptags.map((t) => r.prefill_kernel_us[t] ?? '—').join(' | ')} |`);
}
if (profile) {
  console.log('\nkernels, ms per decode step (count × one call), stock tfjs ops → weft kernel\n\n| op | per step | stock ms | weft ms | speed-up |\n| --- | --- | --- | --- | --- |');
  for (const k of profile.kernels as { op: string; count: number; stockMs: number; weftMs: number }[]) {
    console.log(`| ${k.op} | ${k.count} | ${k.stockMs} | ${k.weftMs} | ${(k.stockMs / k.weftMs).toFixed(1)}× |`);
  }
  console.log(`\ntfjs per-op cost (µs, chain of tiny adds) by WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: ${JSON.stringify(profile.perOpUs)}`);
}
console.log(`\nweft decode ms per step: ${JSON.stringify(weftDecodeMsPerStep)}`);

mkdirSync(dirname(String(v.out)), { recursive: true });
writeFileSync(
  String(v.out),
  JSON.stringify({ date: new Date().toISOString(), shape, params, promptLen, decodeTokens, loadS, weftDecodeMsPerStep, planRows, torch: torchInfo && { version: torchInfo.torch, transformers: torchInfo.transformers, device: torchInfo.device }, rows, ratios, profile }, null, 2),
);
log(`wrote ${v.out}`);
process.exit(0);



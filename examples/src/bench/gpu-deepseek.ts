/**
 * bench:gpu's DeepSeek stage (issue 20; scripts/gpu/device.sh extra): a DeepSeek-V2-Lite-shaped checkpoint
 * with random weights (scripts/gpu/random_deepseek.py writes it with transformers on the GPU), served by
 * weft's engine on webgpu (`dtype` bfloat16 by default: the device plan on the WebGPU executor — MLA's
 * latent cache, the stacked experts routed on the device up to 16 rows) against transformers eager on the
 * same files (scripts/gpu/torch_bench.py's rows, `--torch-json`), in one run: prefill of one `--prompt`
 * token prompt, greedy decode at each batch (8-token prompts streamed together: from the last first token to
 * the last token, over `--decode` steps; fresh prompts, so no prefix-cache hits).
 * Per-layer figures divide a step by the checkpoint's layer count (the embedding and head included).
 * The first prefill of a shape (shader compiles, bind groups) is timed apart from the warmed ones of other prompts.
 * `--profile`: then the rank's plan on the WebGPU executor alone (gpu-deepseek-plan.ts): GPU time and µs per
 * kernel tag at the prefill and each decode batch.
 * `--check DIR`: first, the DeepSeek fixtures (V3 and V2-Lite tiny, fp32) through the plan on WebGPU against tfjs and HF.
 * `--compare FILE`: this bench's output for another layer count of the same shape (both ≥ 2 layers, so they
 * differ only in MoE layers): the MoE layer's own step cost from the difference, and the full model's
 * 27 layers (V2-Lite) extrapolated from it, per engine and batch.
 *
 * usage: node examples/dist/bench/gpu-deepseek.js --dir DIR [--torch-json FILE] [--prompt 512] [--decode 32]
 *          [--batches 1,16] [--dtype bfloat16] [--backend webgpu] [--compare FILE] [--full-layers 27] [--profile] [--check FIXTURES_DIR]
 *          [--out bench-results/gpu-deepseek.json]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BackendName, type WeightDtype, type WeightFormat } from '@weft/core';
import { registration } from '@weft/deepseek';
import { LLM } from '@weft/engine';
import { profileDeepseekPlan, type DeepseekProfile } from './gpu-deepseek-plan.js';
import { checkPlan } from './gpu-plan.js';
import { median } from './stats.js';

const { values: v } = parseArgs({
  options: {
    dir: { type: 'string' },
    backend: { type: 'string', default: 'webgpu' },
    dtype: { type: 'string', default: 'bfloat16' },
    prompt: { type: 'string', default: '512' },
    decode: { type: 'string', default: '32' },
    batches: { type: 'string', default: '1,16' },
    'torch-json': { type: 'string' },
    compare: { type: 'string' },
    'full-layers': { type: 'string', default: '27' },
    out: { type: 'string', default: 'bench-results/gpu-deepseek.json' },
    profile: { type: 'boolean', default: false },
    check: { type: 'string' },
  },
});
if (!v.dir) throw new Error('--dir: the checkpoint folder (scripts/gpu/random_deepseek.py --dir)');
const dir = String(v.dir);
const log = (m: string) => process.stderr.write(`[bench:gpu-deepseek] ${m}\n`);
const promptLen = Number(v.prompt);
const decodeTokens = Number(v.decode);
const batches = String(v.batches).split(',').map(Number);
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { num_hidden_layers: number; vocab_size: number; n_routed_experts: number; hidden_size: number };
const layers = config.num_hidden_layers;
let checked: Awaited<ReturnType<typeof checkPlan>> | null = null;
if (v.check) {
  const fp32 = { dtype: 'float32', quantization: null } as const;
  const runs: [string, string, WeightFormat][] = [
    ['deepseek-v3-tiny', 'expected.json', fp32],
    ['deepseek-v2-lite-tiny', 'expected.json', fp32],
  ];
  try {
    checked = await checkPlan(String(v.check), (m) => log(`check: ${m}`), runs, (d, s) => registration.createModel(d, s, { mlaKvCache: 'latent' }));
  } catch (e) {
    log(`check failed: ${(e as Error).stack ?? e}`);
  }
}
const promptOf = (len: number, salt: number) => Array.from({ length: len }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (config.vocab_size - 3)));

interface Row {
  engine: string;
  dtype: string;
  batch: number;
  prefill_tok_s: number | null;
  decode_tok_s: number;
  decode_step_ms?: number;
  decode_ms_per_layer?: number;
  experts?: string | null;
}
const rows: Row[] = [];

log(`loading ${dir} (${layers} layers, ${config.n_routed_experts} routed experts) on ${v.backend}, dtype ${v.dtype}`);
let t0 = performance.now();
const llm = await LLM.load(dir, { tp: 1, backend: v.backend as BackendName, dtype: v.dtype as WeightDtype, maxNumSeqs: Math.max(16, ...batches), maxModelLen: promptLen + 64, timeoutMs: 900_000 });
const loadS = (performance.now() - t0) / 1000;
const stepPath = llm.stepPath;
log(`loaded in ${loadS.toFixed(1)} s; step: ${stepPath}`);
let prefillFirstS = 0;
try {
  t0 = performance.now();
  await llm.generate([promptOf(promptLen, 0)], { maxTokens: 1, ignoreEos: true, temperature: 0 }); // compiles the prefill shapes
  prefillFirstS = (performance.now() - t0) / 1000;
  log(`first prefill ${promptLen} (compiles included): ${prefillFirstS.toFixed(2)} s`);
  const prefills: number[] = [];
  for (let r = 0; r < 3; r++) {
    t0 = performance.now();
    await llm.generate([promptOf(promptLen, r + 1)], { maxTokens: 1, ignoreEos: true, temperature: 0 });
    prefills.push((performance.now() - t0) / 1000);
  }
  const prefillTokS = +(promptLen / median(prefills)).toFixed(1);
  log(`prefill ${promptLen}: ${prefillTokS} tok/s`);
  let salt = 100;
  // Decode alone: every request streams, all queued at once (one prefill step, then batched decode steps);
  // from the moment the last request has its first token to the last token, over the steps in between.
  const decodeStep = async (b: number) => {
    const firsts: number[] = [];
    const ends: number[] = [];
    await Promise.all(
      Array.from({ length: b }, async () => {
        const prompt = promptOf(8, salt++); // fresh prompts: no prefix-cache hits
        let n = 0;
        for await (const ev of llm.stream(prompt, { maxTokens: decodeTokens + 1, ignoreEos: true, temperature: 0 })) {
          if (n === 0 && ev.tokenIds.length) firsts.push(performance.now());
          n += ev.tokenIds.length;
        }
        ends.push(performance.now());
      }),
    );
    return (Math.max(...ends) - Math.max(...firsts)) / decodeTokens;
  };
  for (const b of batches) {
    await decodeStep(b); // warm-up at this batch
    const stepMs = median([await decodeStep(b), await decodeStep(b), await decodeStep(b)]);
    const row: Row = { engine: `weft ${v.backend} ${v.dtype} (${stepPath})`, dtype: String(v.dtype), batch: b, prefill_tok_s: prefillTokS, decode_tok_s: +((b / stepMs) * 1000).toFixed(2), decode_step_ms: +stepMs.toFixed(3), decode_ms_per_layer: +(stepMs / layers).toFixed(3) };
    rows.push(row);
    log(JSON.stringify(row));
  }
} finally {
  await llm.close();
}
let profile: DeepseekProfile | null = null;
if (v.profile) {
  try {
    profile = await profileDeepseekPlan(dir, { promptLen, batches, decodeTokens, vocab: config.vocab_size, format: { dtype: v.dtype as WeightDtype, quantization: null }, log });
  } catch (e) {
    log(`profile failed: ${(e as Error).stack ?? e}`);
  }
}

interface TorchResults {
  torch: string;
  transformers: string;
  device: string;
  rows: Row[];
}
let torch = null as TorchResults | null;
if (v['torch-json']) {
  try {
    torch = JSON.parse(readFileSync(String(v['torch-json']), 'utf8').trim().split('\n').pop()!) as TorchResults;
    for (const r of torch.rows) rows.push({ ...r, decode_step_ms: +((r.batch / r.decode_tok_s) * 1000).toFixed(3), decode_ms_per_layer: +((r.batch / r.decode_tok_s) * 1000 / layers).toFixed(3) });
  } catch (e) {
    log(`cannot read --torch-json ${v['torch-json']}: ${(e as Error).message}`);
  }
}
const ratios = rows
  .filter((r) => r.engine.startsWith('weft'))
  .flatMap((w) =>
    rows
      .filter((o) => o.engine.startsWith('transformers') && o.batch === w.batch)
      .map((o) => ({ batch: w.batch, vs: o.engine, decode: +(w.decode_tok_s / o.decode_tok_s).toFixed(3), prefill: w.prefill_tok_s && o.prefill_tok_s ? +(w.prefill_tok_s / o.prefill_tok_s).toFixed(3) : null })),
  );

// The MoE layer's own cost from another layer count's run, and the full model extrapolated from it.
const full = Number(v['full-layers']);
const other = v.compare ? (JSON.parse(readFileSync(String(v.compare), 'utf8')) as { layers: number; rows: Row[] }) : null;
const byLayer = other && other.layers !== layers
  ? rows.flatMap((r) => {
      const o = other.rows.find((x) => x.engine.split(' (')[0] === r.engine.split(' (')[0] && x.batch === r.batch);
      if (!o?.decode_step_ms || !r.decode_step_ms) return [];
      const layerMs = (r.decode_step_ms - o.decode_step_ms) / (layers - other.layers);
      const fullMs = r.decode_step_ms + (full - layers) * layerMs;
      return [{ engine: r.engine, batch: r.batch, moeLayerMs: +layerMs.toFixed(3), fullLayers: full, fullStepMs: +fullMs.toFixed(2), fullDecodeTokS: +((r.batch / fullMs) * 1000).toFixed(1) }];
    })
  : [];
const fullRatios = byLayer
  .filter((r) => r.engine.startsWith('weft'))
  .flatMap((w) => byLayer.filter((o) => o.engine.startsWith('transformers') && o.batch === w.batch).map((o) => ({ batch: w.batch, vs: o.engine, decode: +(w.fullDecodeTokS / o.fullDecodeTokS).toFixed(3) })));

console.log(`\nDeepSeek-V2-Lite shape, ${layers} layers (1 dense + ${layers - 1} MoE), random bf16 weights, prompt ${promptLen}, ${decodeTokens} decode tokens; weft load ${loadS.toFixed(1)} s\n`);
console.log('| engine | batch | prefill tok/s | decode tok/s | decode step ms | ms per layer |\n| --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.engine}${r.experts ? ` (experts: ${r.experts})` : ''} | ${r.batch} | ${r.prefill_tok_s ?? '—'} | ${r.decode_tok_s} | ${r.decode_step_ms ?? '—'} | ${r.decode_ms_per_layer ?? '—'} |`);
console.log('\n| batch | weft ÷ | decode | prefill |\n| --- | --- | --- | --- |');
for (const r of ratios) console.log(`| ${r.batch} | ${r.vs} | ${r.decode}× | ${r.prefill ?? '—'}× |`);
if (byLayer.length) {
  console.log(`\nThe MoE layer's step cost (this run's ${layers} layers against ${other!.layers} in ${v.compare}) and the ${full}-layer model\n\n| engine | batch | ms per MoE layer | ${full}-layer step ms | ${full}-layer decode tok/s |\n| --- | --- | --- | --- | --- |`);
  for (const r of byLayer) console.log(`| ${r.engine} | ${r.batch} | ${r.moeLayerMs} | ${r.fullStepMs} | ${r.fullDecodeTokS} |`);
  for (const r of fullRatios) console.log(`${full} layers, batch ${r.batch}: weft ÷ ${r.vs} = ${r.decode}×`);
}
mkdirSync(dirname(String(v.out)), { recursive: true });
writeFileSync(String(v.out), JSON.stringify({ date: new Date().toISOString(), dir, config, layers, promptLen, decodeTokens, loadS: +loadS.toFixed(1), stepPath, prefillFirstS: +prefillFirstS.toFixed(3), checked, profile, byLayer, fullRatios, torch: torch && { version: torch.torch, transformers: torch.transformers, device: torch.device }, rows, ratios }, null, 1));
log(`wrote ${v.out}`);
process.exit(0);

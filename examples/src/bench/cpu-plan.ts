/**
 * The device plan's host executor against the tfjs path (issue 19): decode steps of a TinyLlama-shaped model
 * (hidden 2048, 32 heads, 4 KV heads, intermediate 5632; `--layers` decoder layers, by default a 256-entry vocabulary
 * so the embedding and LM head are noise; `--layers 22 --vocab 32000` is the whole TinyLlama-1.1B shape), random weights, per format. Both paths run the same loaded rank in this
 * process: the host executor (`recordPlan()` → HostPlanExecutor, @weft/cpu-kernels only) with each op timed, and
 * the tfjs forward on the tensorflow backend with @weft/cpu-kernels for the packed linears (the engine's tp 1
 * rank today). plan-timing.ts: `--batch` sequences (default 1) of `--context` tokens are prefilled in one step, then `--steps` decode steps
 * of one token a sequence are timed (median);
 * per op class µs are per decoder layer (median over the steps of each class's summed time). `uptime` is printed first: this machine is shared.
 *
 * usage: node --conditions=source --import tsx examples/src/bench/cpu-plan.ts [--formats bf16,q8_0,q4_0,fp32] [--layers 2] [--vocab 256] [--context 128]
 *          [--steps 16] [--threads 1] [--batch 1] [--out bench-results/cpu-plan.json]
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '@weft/core';
import { useCpuQuantKernels, type PlanOp } from '@weft/layers';
import { loadPlanRank, planCheckpoint } from './plan-rank.js';
import { timeHostAgainstTfjs } from './plan-timing.js';
import { median } from './stats.js';


/** The class an op's time is filed under (linears by their weight's module). */
function opClass(op: PlanOp): string {
  if (op.kind !== 'linear') return op.kind;
  const name = op.weight.name;
  const m = /(qkv_proj|o_proj|gate_up_proj|down_proj|lm_head|embed_tokens)/.exec(name);
  return `linear ${m ? m[1] : name}`;
}

async function main() {
  const { values } = parseArgs({
    options: {
      formats: { type: 'string', default: 'bf16,q8_0,q4_0' },
      layers: { type: 'string', default: '2' },
      vocab: { type: 'string', default: '256' },
      context: { type: 'string', default: '128' },
      steps: { type: 'string', default: '16' },
      threads: { type: 'string', default: '1' },
      batch: { type: 'string', default: '1' },
      out: { type: 'string', default: 'bench-results/cpu-plan.json' },
    },
  });
  const L = Number(values.layers), C = Number(values.context), N = Number(values.steps), threads = Number(values.threads), B = Number(values.batch);
  const uptime = execSync('uptime').toString().trim();
  console.log(uptime);
  const V = Number(values.vocab);
  const dir = planCheckpoint(L, V);
  const backend = await initBackend({ prefer: 'tensorflow' });
  const kinfo = useCpuQuantKernels({ threads });
  console.log(`tfjs backend ${backend.name}; kernels ${kinfo?.isa} (${threads} thread${threads > 1 ? 's' : ''}); ${L} layers, vocab ${V}, batch ${B}, context ${C}, ${N} decode steps`);
  const results: Record<string, unknown>[] = [];
  for (const fmt of values.formats!.split(',')) {
    const model = loadPlanRank(dir, fmt);
    const { hostPrefillMs: hostPrefill, tfjsPrefillMs: tfjsPrefill, hostDecode, tfjsDecode, perClass } = await timeHostAgainstTfjs(model, { batch: B, context: C, steps: N, threads, vocab: V, opClass });
    model.dispose();

    const perLayer = (k: string) => (k.startsWith('linear lm_head') || k === 'embed' || k === 'gatherSampled' ? 1 : L);
    const classes = Object.fromEntries([...perClass].map(([k, list]) => [k, +((median(list) * 1000) / perLayer(k)).toFixed(1)]));
    const row = {
      format: fmt,
      hostTokS: +((1000 * B) / median(hostDecode)).toFixed(2),
      tfjsTokS: +((1000 * B) / median(tfjsDecode)).toFixed(2),
      hostDecodeMs: +median(hostDecode).toFixed(3),
      tfjsDecodeMs: +median(tfjsDecode).toFixed(3),
      hostPerLayerMs: +(median(hostDecode) / L).toFixed(3),
      tfjsPerLayerMs: +(median(tfjsDecode) / L).toFixed(3),
      speedup: +(median(tfjsDecode) / median(hostDecode)).toFixed(2),
      hostPrefillMs: +hostPrefill.toFixed(1),
      tfjsPrefillMs: +tfjsPrefill.toFixed(1),
      perLayerUs: classes,
    };
    console.log(JSON.stringify(row));
    results.push(row);
  }
  const after = execSync('uptime').toString().trim();
  console.log(after);
  mkdirSync(dirname(values.out!), { recursive: true });
  writeFileSync(values.out!, JSON.stringify({ uptime, after, layers: L, vocab: V, context: C, steps: N, threads, batch: B, results }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

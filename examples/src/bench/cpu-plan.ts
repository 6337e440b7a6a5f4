/**
 * The device plan's host executor against the tfjs path (issue 19): decode steps of a TinyLlama-shaped model
 * (hidden 2048, 32 heads, 4 KV heads, intermediate 5632; `--layers` decoder layers, by default a 256-entry vocabulary
 * so the embedding and LM head are noise; `--layers 22 --vocab 32000` is the whole TinyLlama-1.1B shape), random weights, per format. Both paths run the same loaded rank in this
 * process: the host executor (`recordPlan()` → HostPlanExecutor, @weft/cpu-kernels only) with each op timed, and
 * the tfjs forward on the tensorflow backend with @weft/cpu-kernels for the packed linears (the engine's tp 1
 * rank today). `--batch` sequences (default 1) of `--context` tokens are prefilled in one step, then `--steps` decode steps
 * of one token a sequence are timed (median);
 * per op class µs are per decoder layer (median over the steps of each class's summed time). `uptime` is printed first: this machine is shared.
 *
 * usage: node --conditions=source --import tsx examples/src/bench/cpu-plan.ts [--formats bf16,q8_0,q4_0,fp32] [--layers 2] [--vocab 256] [--context 128]
 *          [--steps 16] [--threads 1] [--batch 1] [--out bench-results/cpu-plan.json]
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { GroupCoordinator, SoloCommunicator, type ParallelState } from '@weft/comm';
import { Checkpoint, initBackend, resolveParallelConfig, type WeightFormat } from '@weft/core';
import {
  buildAttentionMetadata,
  HostPlanExecutor,
  loadWeights,
  PagedKVCache,
  positionsOf,
  QuantizationConfig,
  useCpuQuantKernels,
  type AttentionMetadata,
  type PlanOp,
} from '@weft/layers';
import { registration } from '@weft/llama';
import { hasRandomLlama, writeRandomLlama, type LlamaShape } from './random-checkpoint.js';
import { median } from './stats.js';

const FORMATS: Record<string, WeightFormat> = {
  fp32: { dtype: 'float32', quantization: null },
  bf16: { dtype: 'bfloat16', quantization: null },
  q8_0: { dtype: 'bfloat16', quantization: 'q8_0' },
  q4_0: { dtype: 'bfloat16', quantization: 'q4_0' },
};

function soloState(): ParallelState {
  const g = (kind: string) => new GroupCoordinator({ rank: 0, ranks: [0], uniqueName: `${kind}:0`, cpuGroup: new SoloCommunicator(`${kind}:0`) });
  return { rank: 0, worldSize: 1, config: resolveParallelConfig({}), world: g('world'), tp: g('tp'), pp: g('pp'), dp: g('dp'), ep: g('ep') };
}

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
  const shape: LlamaShape = { name: `plan-l${L}-v${V}`, hidden: 2048, layers: L, heads: 32, kvHeads: 4, intermediate: 5632, vocab: V };
  const dir = join(tmpdir(), `weft-cpu-plan-${shape.name}`);
  if (!hasRandomLlama(dir)) writeRandomLlama(dir, shape);
  const backend = await initBackend({ prefer: 'tensorflow' });
  const kinfo = useCpuQuantKernels({ threads });
  console.log(`tfjs backend ${backend.name}; kernels ${kinfo?.isa} (${threads} thread${threads > 1 ? 's' : ''}); ${L} layers, vocab ${V}, batch ${B}, context ${C}, ${N} decode steps`);
  const blockSize = 16, perSeq = Math.ceil((C + N + 4) / blockSize), numBlocks = B * perSeq;
  const tables = Array.from({ length: B }, (_, b) => Array.from({ length: perSeq }, (_, i) => b * perSeq + i));
  const results: Record<string, unknown>[] = [];
  for (const fmt of values.formats!.split(',')) {
    const format = FORMATS[fmt];
    if (!format) throw new Error(`--formats: unknown format '${fmt}' (${Object.keys(FORMATS).join(', ')})`);
    const model = registration.createModel(dir, soloState());
    const ckpt = Checkpoint.open(dir);
    try {
      loadWeights({ params: model.parameters(), checkpoint: ckpt, stacked: model.stackedParams, ignore: (n) => model.ignoreTensor(n), quantization: new QuantizationConfig(format) });
    } finally {
      ckpt.close();
    }
    // B sequences at the same context, q new tokens each
    const metaAt = (ctx: number, q: number): AttentionMetadata =>
      buildAttentionMetadata(tables.map((blockTable, seqId) => ({ seqId, queryLen: q, contextLen: ctx, blockTable })), blockSize);
    const lastRows = (q: number) => Int32Array.from({ length: B }, (_, b) => b * q + q - 1);
    const ids = (n: number) => Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % V);

    // host executor
    // per op class: its ms summed over one step, a list over the measured steps (median taken)
    const perClass = new Map<string, number[]>();
    let stepIndex = -1;
    const ex = new HostPlanExecutor(model.recordPlan(), {
      threads,
      profile: (op, ms) => {
        if (stepIndex < 0) return;
        const list = perClass.get(opClass(op)) ?? [];
        list[stepIndex] = (list[stepIndex] ?? 0) + ms;
        perClass.set(opClass(op), list);
      },
    });
    ex.initCaches(numBlocks, blockSize);
    const hostStep = async (ctx: number, q: number) => {
      const meta = metaAt(ctx, q);
      const t0 = performance.now();
      await ex.step({ tokenIds: ids(B * q), positions: positionsOf(meta), seqs: meta.seqs, blockSize, sampledRows: lastRows(q) });
      return performance.now() - t0;
    };
    // tfjs path on the same parameters, its own caches
    const caches = model.kvCacheSpecs().map((sp) => new PagedKVCache({ ...sp, numBlocks, blockSize }));
    model.bindKVCaches(caches);
    const tfjsStep = async (ctx: number, q: number) => {
      const meta = metaAt(ctx, q);
      const inputIds = tf.tensor1d(ids(B * q), 'int32');
      const positions = tf.tensor1d(positionsOf(meta), 'int32');
      const t0 = performance.now();
      const hidden = (await model.forward({ inputIds, positions, meta, useCache: true }, null)) as tf.Tensor2D;
      const last = tf.gather(hidden, tf.tensor1d(lastRows(q), 'int32')) as tf.Tensor2D;
      const logits = await model.computeLogits(last);
      await logits!.data();
      const ms = performance.now() - t0;
      tf.dispose([inputIds, positions, hidden, last, logits!]);
      return ms;
    };
    // The two paths alternate step by step, so that both see the same load on a shared machine.
    const hostPrefill = await hostStep(0, C);
    const tfjsPrefill = await tfjsStep(0, C);
    const hostDecode: number[] = [];
    const tfjsDecode: number[] = [];
    for (let i = 0; i < N; i++) {
      stepIndex = i >= 2 ? i - 2 : -1;
      const h = await hostStep(C + i, 1);
      const t = await tfjsStep(C + i, 1);
      if (i >= 2) {
        hostDecode.push(h);
        tfjsDecode.push(t);
      }
    }
    ex.dispose();
    for (const c of caches) c.dispose();
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

/**
 * DeepSeek's MLA and MoE on the host executor against the tfjs path (issues 19, 20): decode steps of a
 * DeepSeek-V2-Lite-shaped model (hidden 2048, 16 heads, MLA kv_lora 512 / nope 128 / rope 64 / v 128, no
 * q_lora; layer 0 dense (intermediate 10944), then `--moe-layers` MoE layers of 64 routed experts top-6 of
 * 1408 with 2 shared experts), vocab 256, random weights generated tensor by tensor at load (never all fp32
 * at once), per format. Both paths run the same loaded rank in this process: the host executor
 * (`recordPlan()` → HostPlanExecutor) with each op timed, and the tfjs forward on the tensorflow backend with
 * @weft/cpu-kernels for the packed linears (plan-timing.ts: `--batch` sequences of `--context` tokens
 * prefilled, then `--steps` decode steps timed, median, the paths alternating). `uptime` first: this machine is shared.
 *
 * usage: node --conditions=source --import tsx examples/src/bench/cpu-plan-deepseek.ts [--formats q4_0,q8_0,bf16]
 *          [--moe-layers 1] [--batch 1] [--context 64] [--steps 8] [--threads 1] [--out bench-results/cpu-plan-deepseek.json]
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, parseModelConfig, type DeepseekConfig, type WeightFormat } from '@weft/core';
import { DeepseekForCausalLM } from '@weft/deepseek';
import { loadWeights, narrowHost, QuantizationConfig, soloParallelState, useCpuQuantKernels, type CheckpointReader, type HostTensor, type PlanOp } from '@weft/layers';
import { timeHostAgainstTfjs } from './plan-timing.js';
import { median } from './stats.js';

const FORMATS: Record<string, WeightFormat> = {
  bf16: { dtype: 'bfloat16', quantization: null },
  q8_0: { dtype: 'bfloat16', quantization: 'q8_0' },
  q4_0: { dtype: 'bfloat16', quantization: 'q4_0' },
};

function v2LiteShaped(moeLayers: number): DeepseekConfig {
  return parseModelConfig(
    {
      architectures: ['DeepseekV2ForCausalLM'], model_type: 'deepseek_v2', hidden_size: 2048, intermediate_size: 10944,
      moe_intermediate_size: 1408, num_hidden_layers: 1 + moeLayers, num_attention_heads: 16, num_key_value_heads: 16,
      n_routed_experts: 64, n_shared_experts: 2, num_experts_per_tok: 6, first_k_dense_replace: 1, moe_layer_freq: 1,
      n_group: 1, topk_group: 1, topk_method: 'greedy', scoring_func: 'softmax', norm_topk_prob: false, routed_scaling_factor: 1,
      kv_lora_rank: 512, q_lora_rank: null, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128, vocab_size: 256,
      max_position_embeddings: 4096, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu',
      attention_bias: false,
    },
    'bench',
  ) as DeepseekConfig;
}

/** The checkpoint the rank's parameters want (gate_up as gate + up), each tensor random when read. */
function randomCheckpoint(model: DeepseekForCausalLM): CheckpointReader {
  const shapes = new Map<string, number[]>();
  for (const p of model.parameters()) {
    const shape = [...p.shape];
    if (p.name.includes('gate_up_proj')) {
      for (const part of ['gate_proj', 'up_proj']) shapes.set(p.name.replace('gate_up_proj', part), [shape[0]! / 2, shape[1]!]);
    } else shapes.set(p.name, shape);
  }
  let seed = 1;
  const read = (name: string): HostTensor => {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`no tensor ${name}`);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.includes('norm')) data.fill(1);
    else {
      let s = seed++ >>> 0;
      for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        data[i] = ((s / 4294967296) * 2 - 1) * 0.035;
      }
    }
    return { shape, dtype: 'float32', data };
  };
  return { names: () => [...shapes.keys()], info: (name) => ({ shape: shapes.get(name)! }), read, narrow: (name, dim, start, length) => narrowHost(read(name), dim, start, length, name) };
}

/** MLA / MoE ops by role; linears by their module. */
function opClass(op: PlanOp): string {
  if (op.kind === 'headMatmul') return `headMatmul ${op.weight.name.split('.').at(-1)}`;
  if (op.kind !== 'linear') return op.kind;
  if (/\.mlp\.gate\.weight$/.test(op.weight.name)) return 'linear router';
  const m = /(shared_experts\.\w+|q_proj|kv_a_proj_with_mqa|o_proj|gate_up_proj|down_proj|lm_head)/.exec(op.weight.name);
  return `linear ${m ? m[1] : op.weight.name}`;
}

async function main() {
  const { values } = parseArgs({
    options: {
      formats: { type: 'string', default: 'q4_0,q8_0,bf16' },
      'moe-layers': { type: 'string', default: '1' },
      batch: { type: 'string', default: '1' },
      context: { type: 'string', default: '64' },
      steps: { type: 'string', default: '8' },
      threads: { type: 'string', default: '1' },
      out: { type: 'string', default: 'bench-results/cpu-plan-deepseek.json' },
    },
  });
  const M = Number(values['moe-layers']), B = Number(values.batch), C = Number(values.context), N = Number(values.steps), threads = Number(values.threads);
  const uptime = execSync('uptime').toString().trim();
  console.log(uptime);
  const backend = await initBackend({ prefer: 'tensorflow' });
  const kinfo = useCpuQuantKernels({ threads });
  const config = v2LiteShaped(M);
  console.log(`tfjs backend ${backend.name}; kernels ${kinfo?.isa} (${threads} thread${threads > 1 ? 's' : ''}); 1 dense + ${M} MoE layers, batch ${B}, context ${C}, ${N} decode steps`);
  const results: Record<string, unknown>[] = [];
  for (const fmt of values.formats!.split(',')) {
    const format = FORMATS[fmt];
    if (!format) throw new Error(`--formats: unknown format '${fmt}' (${Object.keys(FORMATS).join(', ')})`);
    const model = new DeepseekForCausalLM(config, soloParallelState());
    const t0 = performance.now();
    loadWeights({ params: model.parameters(), checkpoint: randomCheckpoint(model), stacked: model.stackedParams, quantization: new QuantizationConfig(format) });
    console.log(`${fmt}: loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const { hostPrefillMs: hostPrefill, tfjsPrefillMs: tfjsPrefill, hostDecode, tfjsDecode, perClass } = await timeHostAgainstTfjs(model, { batch: B, context: C, steps: N, threads, vocab: 256, opClass });
    model.dispose();

    const classes = Object.fromEntries([...perClass].map(([k, list]) => [k, +(median(list) * 1000).toFixed(0)]));
    const row = {
      format: fmt,
      batch: B,
      hostDecodeMs: +median(hostDecode).toFixed(2),
      tfjsDecodeMs: +median(tfjsDecode).toFixed(2),
      speedup: +(median(tfjsDecode) / median(hostDecode)).toFixed(2),
      hostPrefillMs: +hostPrefill.toFixed(0),
      tfjsPrefillMs: +tfjsPrefill.toFixed(0),
      stepUsByOpClass: classes,
    };
    console.log(JSON.stringify(row));
    results.push(row);
  }
  mkdirSync(dirname(values.out!), { recursive: true });
  writeFileSync(values.out!, JSON.stringify({ uptime, layers: { dense: 1, moe: M }, batch: B, context: C, steps: N, threads, results }, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * npm run bench:moe — a DeepSeek-V2-Lite-shaped MoE block and a whole small
 * DeepSeek model with random weights: tokens/s with experts tensor-parallel vs
 * expert-parallel at 2 and 4 ranks, both EP dispatch methods, bytes moved by
 * collectives per token, and KV-cache bytes per token (full K/V as weft keeps
 * (full per-head K/V vs MLA's compressed latent, weft's default). Prints a table, writes JSON.
 *
 * usage: node examples/dist/bench/moe.js [--tokens 32] [--iters 3] [--out bench-results/moe.json]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { runRanks } from '@weft/comm';
import type { MoeBenchArgs } from './moe-rank.js';

const { values: v } = parseArgs({ options: { tokens: { type: 'string', default: '32' }, iters: { type: 'string', default: '3' }, out: { type: 'string', default: 'bench-results/moe.json' } } });
const tokens = Number(v.tokens);
const iters = Number(v.iters);
const log = (m: string) => process.stderr.write(`[bench:moe] ${m}\n`);
const entry = new URL(`./moe-rank${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

// DeepSeek-V2-Lite's MoE shape (hidden 2048, 64 experts of 1408, top-6, 2 shared).
const V2_LITE = {
  model_type: 'deepseek_v2', vocab_size: 102400, hidden_size: 2048, intermediate_size: 10944, moe_intermediate_size: 1408,
  num_hidden_layers: 27, num_attention_heads: 16, num_key_value_heads: 16, n_shared_experts: 2, n_routed_experts: 64,
  num_experts_per_tok: 6, first_k_dense_replace: 1, moe_layer_freq: 1, q_lora_rank: null, kv_lora_rank: 512,
  qk_rope_head_dim: 64, qk_nope_head_dim: 128, v_head_dim: 128, topk_method: 'greedy', n_group: 1, topk_group: 1,
  norm_topk_prob: false, routed_scaling_factor: 1.0, max_position_embeddings: 4096, rms_norm_eps: 1e-6, rope_theta: 10000,
};
// A whole small model: 4 layers (1 dense + 3 MoE) of the same family, 16 experts.
const SMALL = { ...V2_LITE, vocab_size: 8192, hidden_size: 512, intermediate_size: 1536, moe_intermediate_size: 256, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 8, n_routed_experts: 16, num_experts_per_tok: 4, kv_lora_rank: 128, qk_rope_head_dim: 32, qk_nope_head_dim: 64, v_head_dim: 64 };

type Cfg = typeof V2_LITE;
const LAYOUTS = [
  { name: 'tp1', tp: 1, dp: 1, ep: false, dispatch: 'allgather' as const },
  { name: 'tp2 (experts TP)', tp: 2, dp: 1, ep: false, dispatch: 'allgather' as const },
  { name: 'tp2 EP2 allgather', tp: 2, dp: 1, ep: true, dispatch: 'allgather' as const },
  { name: 'tp2 EP2 alltoall', tp: 2, dp: 1, ep: true, dispatch: 'alltoall' as const },
  { name: 'tp4 (experts TP)', tp: 4, dp: 1, ep: false, dispatch: 'allgather' as const },
  { name: 'tp4 EP4 allgather', tp: 4, dp: 1, ep: true, dispatch: 'allgather' as const },
  { name: 'tp4 EP4 alltoall', tp: 4, dp: 1, ep: true, dispatch: 'alltoall' as const },
];

function kvBytesPerToken(c: Cfg) {
  const full = c.num_hidden_layers * c.num_attention_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim) * 4;
  const latent = c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * 4;
  return { full, latent };
}

const rows: Record<string, unknown>[] = [];
for (const [kind, cfg] of [['layer', V2_LITE], ['model', SMALL]] as const) {
  // The V2-Lite block's experts are 2.2 GB of fp32 (4.4 GB with XNNPACK's packed copies): over one wasm rank.
  for (const l of LAYOUTS.filter((x) => kind === 'model' || x.tp > 1)) {
    log(`${kind} ${l.name}`);
    const args: MoeBenchArgs = { kind, config: cfg, dispatch: l.dispatch, tokens, iters };
    const res = (await runRanks({ parallel: { tp: l.tp, dp: l.dp, ep: l.ep }, entry, args, backend: 'wasm', timeoutMs: 600_000 })) as { msPerStep: number; bytesPerStep: number }[];
    const ms = Math.max(...res.map((r) => r.msPerStep));
    const bytes = res.reduce((a, r) => a + r.bytesPerStep, 0);
    const row = { kind, layout: l.name, tokens, ms_per_step: +ms.toFixed(1), tok_s: +((tokens * 1000) / ms).toFixed(1), collective_bytes_per_token: Math.round(bytes / tokens) };
    rows.push(row);
    log(JSON.stringify(row));
  }
}
const kv = { v2_lite: kvBytesPerToken(V2_LITE), small: kvBytesPerToken(SMALL) };
console.log(`\nDeepSeek MoE on wasm, ${tokens} tokens per step (decode-like: one token per sequence)\n`);
console.log('| what | layout | ms/step | tokens/s | collective bytes/token (all ranks) |\n| --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.kind === 'layer' ? 'V2-Lite MoE block' : 'small model (4 layers)'} | ${r.layout} | ${r.ms_per_step} | ${r.tok_s} | ${r.collective_bytes_per_token} |`);
console.log(`\nKV cache bytes per token: V2-Lite full K/V ${kv.v2_lite.full} (mlaKvCache: "full") vs MLA latent ${kv.v2_lite.latent} (the default) (${(kv.v2_lite.full / kv.v2_lite.latent).toFixed(1)}× smaller); small model ${kv.small.full} vs ${kv.small.latent}`);
mkdirSync(dirname(String(v.out)), { recursive: true });
writeFileSync(String(v.out), JSON.stringify({ date: new Date().toISOString(), tokens, iters, rows, kvBytesPerToken: kv }, null, 2));
log(`wrote ${v.out}`);

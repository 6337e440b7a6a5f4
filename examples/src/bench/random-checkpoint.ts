/** Random-weight Llama checkpoints in the Hugging Face layout, for benchmarks (bf16 on disk). */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '@weft/core';

export interface LlamaShape {
  name: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
}

export const SHAPES: Record<string, LlamaShape> = {
  small: { name: 'small', hidden: 1024, layers: 8, heads: 16, kvHeads: 4, intermediate: 2816, vocab: 32000 },
  tinyllama: { name: 'tinyllama', hidden: 2048, layers: 16, heads: 32, kvHeads: 8, intermediate: 5632, vocab: 32000 },
};

export function paramCount(s: LlamaShape): number {
  const hd = s.hidden / s.heads;
  const attn = s.hidden * s.hidden * 2 + 2 * s.hidden * s.kvHeads * hd;
  const mlp = 3 * s.hidden * s.intermediate;
  return s.layers * (attn + mlp + 2 * s.hidden) + 2 * s.vocab * s.hidden + s.hidden;
}

/** bf16 values of N(0, std) via a fast LCG (the numbers only need to be finite and varied). */
function randomBf16(n: number, std: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[0] = ((s / 4294967296) * 2 - 1) * std * 1.7;
    out[i] = u[0]! >>> 16;
  }
  return out;
}

/**
 * Write a random-weight checkpoint in shards (one per layer, plus one for the
 * embeddings and head) with `model.safetensors.index.json`: one file write
 * stops at 2 GiB, and TinyLlama in bf16 is 2.2 GB. Sharded loading gets used too.
 */
export function writeRandomLlama(dir: string, s: LlamaShape, log: (m: string) => void = () => {}): void {
  mkdirSync(dir, { recursive: true });
  const hd = s.hidden / s.heads;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: s.hidden, intermediate_size: s.intermediate,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, vocab_size: s.vocab,
    max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu',
    torch_dtype: 'bfloat16', bos_token_id: 1, eos_token_id: 2,
  }, null, 2));
  let seed = 1;
  const t = (shape: number[], std = 0.02) => ({ dtype: 'BF16' as const, shape, data: randomBf16(shape.reduce((a, b) => a * b, 1), std, seed++) });
  const ones = (n: number) => ({ dtype: 'BF16' as const, shape: [n], data: new Uint16Array(n).fill(0x3f80) });
  const weightMap: Record<string, string> = {};
  const write = (file: string, tensors: Record<string, ReturnType<typeof t>>) => {
    writeSafetensors(join(dir, file), tensors);
    for (const k of Object.keys(tensors)) weightMap[k] = file;
  };
  log(`writing ${s.name} checkpoint (${(paramCount(s) / 1e6).toFixed(0)} M parameters, bf16, sharded) to ${dir}`);
  write('model-embed.safetensors', { 'model.embed_tokens.weight': t([s.vocab, s.hidden]), 'model.norm.weight': ones(s.hidden), 'lm_head.weight': t([s.vocab, s.hidden]) });
  for (let i = 0; i < s.layers; i++) {
    const p = `model.layers.${i}`;
    write(`model-layer-${String(i).padStart(3, '0')}.safetensors`, {
      [`${p}.input_layernorm.weight`]: ones(s.hidden),
      [`${p}.post_attention_layernorm.weight`]: ones(s.hidden),
      [`${p}.self_attn.q_proj.weight`]: t([s.heads * hd, s.hidden]),
      [`${p}.self_attn.k_proj.weight`]: t([s.kvHeads * hd, s.hidden]),
      [`${p}.self_attn.v_proj.weight`]: t([s.kvHeads * hd, s.hidden]),
      [`${p}.self_attn.o_proj.weight`]: t([s.hidden, s.heads * hd]),
      [`${p}.mlp.gate_proj.weight`]: t([s.intermediate, s.hidden]),
      [`${p}.mlp.up_proj.weight`]: t([s.intermediate, s.hidden]),
      [`${p}.mlp.down_proj.weight`]: t([s.hidden, s.intermediate]),
    });
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 1));
}

/** True once `writeRandomLlama` finished in `dir` (the index is written last). */
export function hasRandomLlama(dir: string): boolean {
  return existsSync(join(dir, 'model.safetensors.index.json'));
}

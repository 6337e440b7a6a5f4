import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkWeightsFitBytes } from './memory-fit.js';
import { writeSafetensors } from './safetensors-write.js';
import { heldTensorBytes, isQuantizableTensor, resolveModelWeightFormat, resolveWeightFormat, type WeightFormat } from './weight-format.js';

const GB = 1e9;

/** TinyLlama-1.1B's tensors (names and shapes only). */
function tinyLlama(): [string, number[]][] {
  const t: [string, number[]][] = [['model.embed_tokens.weight', [32000, 2048]], ['lm_head.weight', [32000, 2048]], ['model.norm.weight', [2048]]];
  for (let l = 0; l < 22; l++) {
    const p = `model.layers.${l}`;
    t.push([`${p}.self_attn.q_proj.weight`, [2048, 2048]], [`${p}.self_attn.k_proj.weight`, [256, 2048]], [`${p}.self_attn.v_proj.weight`, [256, 2048]]);
    t.push([`${p}.self_attn.o_proj.weight`, [2048, 2048]], [`${p}.mlp.gate_proj.weight`, [5632, 2048]], [`${p}.mlp.up_proj.weight`, [5632, 2048]]);
    t.push([`${p}.mlp.down_proj.weight`, [2048, 5632]], [`${p}.input_layernorm.weight`, [2048]], [`${p}.post_attention_layernorm.weight`, [2048]]);
  }
  return t;
}
const held = (fmt: WeightFormat) => tinyLlama().reduce((a, [n, s]) => a + heldTensorBytes(n, s, fmt), 0);

describe('weight format options', () => {
  it('maps vLLM names to llama.cpp formats and names a bad option', () => {
    expect(resolveWeightFormat({})).toEqual({ dtype: 'float32', quantization: null });
    expect(resolveWeightFormat({ dtype: 'bfloat16', quantization: 'int8' })).toEqual({ dtype: 'bfloat16', quantization: 'q8_0' });
    expect(resolveWeightFormat({ quantization: 'int4' })).toEqual({ dtype: 'float32', quantization: 'q4_0' });
    expect(() => resolveWeightFormat({ quantization: 'int3' })).toThrow(/quantization 'int3' is not supported \(use 'int8' \(q8_0\) or 'int4' \(q4_0\)/);
    expect(() => resolveWeightFormat({ dtype: 'float16' })).toThrow(/dtype 'float16' is not supported/);
  });

  it('quantizes decoder linear weights with whole blocks only; never embeddings, head, norms, routers', () => {
    expect(isQuantizableTensor('model.layers.0.self_attn.q_proj.weight', [64, 64])).toBe(true);
    expect(isQuantizableTensor('model.layers.0.mlp.down_proj.weight', [64, 344])).toBe(false);
    expect(isQuantizableTensor('model.layers.1.mlp.experts.3.up_proj.weight', [64, 128])).toBe(true);
    for (const n of ['model.embed_tokens.weight', 'lm_head.weight', 'model.layers.1.mlp.gate.weight', 'model.layers.0.block_sparse_moe.gate.weight', 'model.layers.0.input_layernorm.weight']) {
      expect(isQuantizableTensor(n, [64, 64]), n).toBe(false);
    }
  });

  it('counts compressed bytes: TinyLlama int4 fits one wasm rank, fp32 does not', () => {
    const fp32 = held({ dtype: 'float32', quantization: null });
    const q4 = held({ dtype: 'float32', quantization: 'q4_0' });
    const q8 = held({ dtype: 'float32', quantization: 'q8_0' });
    expect(fp32 / GB).toBeCloseTo(4.40, 2);
    // 22 layers × 44.04 M linear elements at 18/32 (Q4_0) or 34/32 (Q8_0) bytes, plus fp32 embedding and head.
    expect(q4).toBe(22 * 2048 * 21504 * (18 / 32) + 2 * 32000 * 2048 * 4 + 45 * 2048 * 4);
    expect(q8).toBe(22 * 2048 * 21504 * (34 / 32) + 2 * 32000 * 2048 * 4 + 45 * 2048 * 4);
    const opts = { tp: 1, pp: 1, backend: 'wasm' as const, availableBytes: 100 * GB };
    expect(() => checkWeightsFitBytes(fp32, 'tinyllama', opts)).toThrow(/of fp32 weights over tp×pp=1/);
    expect(() => checkWeightsFitBytes(q4, 'tinyllama', { ...opts, format: { dtype: 'float32', quantization: 'q4_0' } })).not.toThrow();
  });

  describe('against a checkpoint', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-weight-format-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const write = (tensors: Record<string, number[]>) => {
      writeFileSync(join(dir, 'config.json'), '{}');
      writeSafetensors(
        join(dir, 'model.safetensors'),
        Object.fromEntries(Object.entries(tensors).map(([n, shape]) => [n, { dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }])),
      );
    };

    it('int4 on a model with no quantizable weight is an error naming the model and option', () => {
      write({ 'model.embed_tokens.weight': [64, 24], 'model.layers.0.mlp.down_proj.weight': [24, 40], 'lm_head.weight': [64, 24] });
      expect(() => resolveModelWeightFormat(dir, { quantization: 'int4' })).toThrow(new RegExp(`${dir}: quantization 'int4' \\(q4_0\\) has nothing to quantize`));
      expect(resolveModelWeightFormat(dir, { dtype: 'bfloat16' })).toEqual({ dtype: 'bfloat16', quantization: null });
    });

    it('accepts it when one weight has whole blocks', () => {
      write({ 'model.embed_tokens.weight': [64, 32], 'model.layers.0.self_attn.q_proj.weight': [32, 32] });
      expect(resolveModelWeightFormat(dir, { quantization: 'int4' })).toEqual({ dtype: 'float32', quantization: 'q4_0' });
    });
  });
});

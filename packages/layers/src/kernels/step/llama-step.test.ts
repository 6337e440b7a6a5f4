/**
 * weft's own WebGPU step (no tfjs) against the Hugging Face fixtures: every position's logits,
 * through prefill, chunked prefill and batched decode over a paged KV pool with scattered block
 * tables, fp32 and bf16 weights. Runs on whatever adapter Dawn finds (Mesa's OpenGL in CI).
 */
import { fileURLToPath } from 'node:url';
import { Checkpoint, initBackend, loadModelConfig, parseModelConfig, type LlamaConfig, type TensorSource } from '@weft/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareLogits, loadFixtureCases, type FixtureCase } from '../../parity.js';
import { WebGpuLlamaStep, packBf16, requestDevice } from './llama-step.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../../../fixtures/${name}`, import.meta.url));
let device: GPUDevice;

beforeAll(async () => {
  await import('@tensorflow/tfjs-backend-cpu');
  await initBackend({ prefer: 'webgpu' });
  device = await requestDevice();
}, 60_000);
afterAll(() => device?.destroy());

async function load(name: string, dtype: 'float32' | 'bfloat16', numBlocks = 24, maxSeqs = 8) {
  const dir = fixture(name);
  const ck = Checkpoint.open(dir);
  try {
    const config = loadModelConfig(dir) as LlamaConfig;
    return await WebGpuLlamaStep.create({ config, weights: ck, dtype, device, numBlocks, maxRows: 256, maxSeqs, maxModelLen: 64 });
  } finally {
    ck.close();
  }
}

/** Scattered, non-contiguous block ids for sequence s (so slot arithmetic is exercised). */
const tableOf = (s: number, n = 4) => Array.from({ length: n }, (_, b) => (7 * (s * n + b) + 5) % 24);
const rowOf = (c: FixtureCase, p: number) => c.logits.slice(p * c.logits_shape[1], (p + 1) * c.logits_shape[1]);
const argmax = (r: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < r.length; i++) if (r[i]! > r[b]!) b = i;
  return b;
};

describe.each([
  ['llama-tiny', 'float32'],
  ['llama-bf16', 'float32'],
  // The fixture's weights are bf16 already, so bf16 storage is exact: same tolerance.
  ['llama-bf16', 'bfloat16'],
  // MQA (one KV head), tied embeddings, llama3 rope.
  ['llama-mqa-tied-llama3', 'float32'],
] as const)('WebGpuLlamaStep on %s (%s weights)', (name, dtype) => {
  let step: WebGpuLlamaStep;
  const cases = loadFixtureCases(fixture(name));
  const V = cases[0]!.logits_shape[1];
  beforeAll(async () => {
    step = await load(name, dtype);
  }, 120_000);
  afterAll(() => step?.destroy());

  it('prefill of every case in one step equals the last row', async () => {
    const r = await step.prefill(
      cases.map((c, s) => ({ tokens: c.input_ids, start: 0, blockTable: tableOf(s) })),
      { logits: true },
    );
    for (const [s, c] of cases.entries()) {
      const got = r.logits!.subarray(s * V, (s + 1) * V);
      const { maxAbs, relL2 } = compareLogits([got], rowOf(c, c.input_ids.length - 1));
      expect(maxAbs).toBeLessThan(1e-3);
      expect(relL2).toBeLessThan(1e-4);
      expect(r.tokens[s]).toBe(argmax(got));
    }
  });

  it('chunked prefill then batched decode equals every position', async () => {
    // First 3 tokens of each case in one chunk, the next 2 as a second chunk, then one token per step.
    const got: Float32Array[][] = cases.map(() => []);
    const r1 = await step.prefill(cases.map((c, s) => ({ tokens: c.input_ids.slice(0, 3), start: 0, blockTable: tableOf(s) })), { logits: true });
    cases.forEach((_, s) => got[s]!.push(r1.logits!.slice(s * V, (s + 1) * V)));
    const r2 = await step.prefill(cases.map((c, s) => ({ tokens: c.input_ids.slice(3, 5), start: 3, blockTable: tableOf(s) })), { logits: true });
    cases.forEach((_, s) => got[s]!.push(r2.logits!.slice(s * V, (s + 1) * V)));
    const longest = Math.max(...cases.map((c) => c.input_ids.length));
    for (let p = 5; p < longest; p++) {
      const live = cases.map((c, s) => ({ c, s })).filter(({ c }) => p < c.input_ids.length);
      const r = await step.decode(live.map(({ c, s }) => ({ token: c.input_ids[p]!, position: p, blockTable: tableOf(s) })), { logits: true });
      live.forEach(({ s }, i) => got[s]!.push(r.logits!.slice(i * V, (i + 1) * V)));
    }
    for (const [s, c] of cases.entries()) {
      const positions = [2, ...Array.from({ length: c.input_ids.length - 4 }, (_, i) => i + 4)];
      const want = positions.flatMap((p) => rowOf(c, p));
      const { maxAbs, relL2 } = compareLogits(got[s]!, want);
      expect(maxAbs).toBeLessThan(1e-3);
      expect(relL2).toBeLessThan(1e-4);
    }
  });

  it('a 12-row step (GEMV) equals the fixture', async () => {
    // Two sequences of the same prompt's first 6 tokens, then each one's next token in one 2-row step.
    const c = cases[0]!;
    const r = await step.prefill([0, 1].map((s) => ({ tokens: c.input_ids.slice(0, 6), start: 0, blockTable: tableOf(s + 4) })), { logits: true });
    for (const s of [0, 1]) {
      const { maxAbs, relL2 } = compareLogits([r.logits!.subarray(s * V, (s + 1) * V)], rowOf(c, 5));
      expect(maxAbs).toBeLessThan(1e-3);
      expect(relL2).toBeLessThan(1e-4);
    }
  });

  it('chained decode (token fed back on the device) equals step-by-step decode', async () => {
    const c = cases[0]!;
    const n = c.input_ids.length;
    const table = tableOf(3);
    const first = await step.prefill([{ tokens: c.input_ids, start: 0, blockTable: table }]);
    const chained = await step.decodeChained([{ token: first.tokens[0]!, position: n, blockTable: table }], 5);
    let tok = first.tokens[0]!;
    for (let t = 0; t < 5; t++) {
      const r = await step.decode([{ token: tok, position: n + t, blockTable: table }]);
      tok = r.tokens[0]!;
      expect(chained[t]![0]).toBe(tok);
    }
  });
});

describe('WebGpuLlamaStep GEMM path (more than 16 rows)', () => {
  it.each([
    ['llama-tiny', 'float32'],
    ['llama-bf16', 'bfloat16'],
  ] as const)('%s (%s weights): two prompts in one 26-row step equal the fixture', async (name, dtype) => {
    const step = await load(name, dtype);
    try {
      const cases = loadFixtureCases(fixture(name));
      const V = cases[0]!.logits_shape[1];
      const long = cases.find((c) => c.input_ids.length > 16)!;
      const short = cases.find((c) => c.input_ids.length <= 16)!;
      const r = await step.prefill(
        [
          { tokens: long.input_ids, start: 0, blockTable: tableOf(0) },
          { tokens: short.input_ids, start: 0, blockTable: tableOf(1) },
        ],
        { logits: true },
      );
      for (const [s, c] of [long, short].entries()) {
        const { maxAbs } = compareLogits([r.logits!.subarray(s * V, (s + 1) * V)], rowOf(c, c.input_ids.length - 1));
        expect(maxAbs).toBeLessThan(1e-3);
      }
    } finally {
      step.destroy();
    }
  });
});

describe('WebGpuLlamaStep with more than 16 sequences (LM head on the GEMM)', () => {
  it('18 prompts in one step each equal the fixture', async () => {
    const step = await load('llama-tiny', 'float32', 40, 20);
    try {
      const cases = loadFixtureCases(fixture('llama-tiny'));
      const V = cases[0]!.logits_shape[1];
      const seqs = Array.from({ length: 18 }, (_, s) => cases[s % cases.length]!);
      const r = await step.prefill(seqs.map((c, s) => ({ tokens: c.input_ids, start: 0, blockTable: [2 * s, 2 * s + 1] })), { logits: true });
      for (const [s, c] of seqs.entries()) {
        const { maxAbs } = compareLogits([r.logits!.subarray(s * V, (s + 1) * V)], rowOf(c, c.input_ids.length - 1));
        expect(maxAbs).toBeLessThan(1e-3);
        expect(r.tokens[s]).toBe(argmax(rowOf(c, c.input_ids.length - 1)));
      }
    } finally {
      step.destroy();
    }
  });
});

/** Random fp32 weights in memory, for shapes no fixture has (head_dim 64 with 8 query heads per KV head: TinyLlama's). */
function randomSource(cfg: LlamaConfig): TensorSource {
  const H = cfg.hiddenSize;
  const D = cfg.headDim;
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [cfg.vocabSize, H], 'model.norm.weight': [H], 'lm_head.weight': [cfg.vocabSize, H] };
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(shapes, {
      [`${p}input_layernorm.weight`]: [H],
      [`${p}post_attention_layernorm.weight`]: [H],
      [`${p}self_attn.q_proj.weight`]: [cfg.numAttentionHeads * D, H],
      [`${p}self_attn.k_proj.weight`]: [cfg.numKeyValueHeads * D, H],
      [`${p}self_attn.v_proj.weight`]: [cfg.numKeyValueHeads * D, H],
      [`${p}self_attn.o_proj.weight`]: [H, cfg.numAttentionHeads * D],
      [`${p}mlp.gate_proj.weight`]: [cfg.intermediateSize, H],
      [`${p}mlp.up_proj.weight`]: [cfg.intermediateSize, H],
      [`${p}mlp.down_proj.weight`]: [H, cfg.intermediateSize],
    });
  }
  let seed = 7;
  const read = (name: string) => {
    const shape = shapes[name]!;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      data[i] = name.endsWith('norm.weight') ? 1 + (seed / 2 ** 32 - 0.5) * 0.2 : (seed / 2 ** 32 - 0.5) * 0.2;
    }
    return { shape, dtype: 'float32' as const, data };
  };
  return {
    names: () => Object.keys(shapes),
    has: (n: string) => n in shapes,
    info: (n: string) => ({ dtype: 'F32' as const, shape: shapes[n]!, byteLength: shapes[n]!.reduce((a, b) => a * b, 4) }),
    read,
    narrow: () => {
      throw new Error('not used');
    },
    close: () => {},
  };
}

describe('WebGpuLlamaStep at head_dim 64, 8 query heads per KV head (TinyLlama-like)', () => {
  it('a 20-token prefill (GEMM, grouped attention) equals 20 decode steps (GEMV, per-head attention)', async () => {
    const config = parseModelConfig(
      { model_type: 'llama', hidden_size: 512, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 8, num_key_value_heads: 1, head_dim: 64, vocab_size: 256, max_position_embeddings: 64, rms_norm_eps: 1e-5, rope_theta: 10000 },
      'test',
    ) as LlamaConfig;
    const step = await WebGpuLlamaStep.create({ config, weights: randomSource(config), device, numBlocks: 8, maxRows: 64, maxSeqs: 4, maxModelLen: 64 });
    try {
      const ids = Array.from({ length: 20 }, (_, i) => (i * 37 + 11) % 256);
      const pre = await step.prefill([{ tokens: ids, start: 0, blockTable: [5, 2] }], { logits: true });
      let last = await step.prefill([{ tokens: ids.slice(0, 1), start: 0, blockTable: [1, 6] }], { logits: true });
      for (let p = 1; p < ids.length; p++) last = await step.decode([{ token: ids[p]!, position: p, blockTable: [1, 6] }], { logits: true });
      const { maxAbs, relL2 } = compareLogits([pre.logits!], last.logits!);
      expect(maxAbs).toBeLessThan(1e-4);
      expect(relL2).toBeLessThan(1e-5);
    } finally {
      step.destroy();
    }
  });
});

describe('packBf16', () => {
  it('rounds to nearest even and keeps bf16 values exact', () => {
    const x = Float32Array.from([1, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -9, 0.1]);
    const u = new Uint32Array(Float32Array.from(x).buffer);
    const b = packBf16(x);
    expect(b[0]).toBe(0x3f80);
    expect(b[1]).toBe(u[1]! >>> 16);
    expect(b[2]).toBe(0x3f80); // tie → even
    expect(b[3]).toBe(0x3f81);
    expect(b[4]).toBe(0x3dcd);
  });
});

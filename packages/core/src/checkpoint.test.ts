import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from './checkpoint.js';
import { CheckpointError } from './errors.js';
import { loadModelConfig } from './hf-config.js';
import { writeSafetensors } from './safetensors-write.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures', import.meta.url));
const MODELS = fileURLToPath(new URL('../../../models', import.meta.url));

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-checkpoint-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** Every tensor name and shape a Hugging Face checkpoint of this config must hold. */
function expectedShapes(modelDir: string): Map<string, number[]> {
  const c = loadModelConfig(modelDir);
  const H = c.hiddenSize;
  const out = new Map<string, number[]>([
    ['model.embed_tokens.weight', [c.vocabSize, H]],
    ['model.norm.weight', [H]],
  ]);
  if (!c.tieWordEmbeddings) out.set('lm_head.weight', [c.vocabSize, H]);
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    out.set(`${p}.input_layernorm.weight`, [H]);
    out.set(`${p}.post_attention_layernorm.weight`, [H]);
    const mlp = (prefix: string, inter: number) => {
      out.set(`${prefix}.gate_proj.weight`, [inter, H]);
      out.set(`${prefix}.up_proj.weight`, [inter, H]);
      out.set(`${prefix}.down_proj.weight`, [H, inter]);
    };
    if (c.family === 'llama') {
      const nh = c.numAttentionHeads;
      out.set(`${p}.self_attn.q_proj.weight`, [nh * c.headDim, H]);
      out.set(`${p}.self_attn.k_proj.weight`, [c.numKeyValueHeads * c.headDim, H]);
      out.set(`${p}.self_attn.v_proj.weight`, [c.numKeyValueHeads * c.headDim, H]);
      out.set(`${p}.self_attn.o_proj.weight`, [H, nh * c.headDim]);
      mlp(`${p}.mlp`, c.intermediateSize);
      continue;
    }
    if (c.family !== 'deepseek') throw new Error(`expectedShapes: no tensor list for family ${c.family}`);
    const nh = c.numAttentionHeads;
    const qk = c.qkNopeHeadDim + c.qkRopeHeadDim;
    if (c.qLoraRank === null) {
      out.set(`${p}.self_attn.q_proj.weight`, [nh * qk, H]);
    } else {
      out.set(`${p}.self_attn.q_a_proj.weight`, [c.qLoraRank, H]);
      out.set(`${p}.self_attn.q_a_layernorm.weight`, [c.qLoraRank]);
      out.set(`${p}.self_attn.q_b_proj.weight`, [nh * qk, c.qLoraRank]);
    }
    out.set(`${p}.self_attn.kv_a_proj_with_mqa.weight`, [c.kvLoraRank + c.qkRopeHeadDim, H]);
    out.set(`${p}.self_attn.kv_a_layernorm.weight`, [c.kvLoraRank]);
    out.set(`${p}.self_attn.kv_b_proj.weight`, [nh * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank]);
    out.set(`${p}.self_attn.o_proj.weight`, [H, nh * c.vHeadDim]);
    if (l < c.firstKDenseReplace || l % c.moeLayerFreq !== 0) {
      mlp(`${p}.mlp`, c.intermediateSize);
      continue;
    }
    out.set(`${p}.mlp.gate.weight`, [c.nRoutedExperts, H]);
    if (c.hasCorrectionBias) out.set(`${p}.mlp.gate.e_score_correction_bias`, [c.nRoutedExperts]);
    for (let e = 0; e < c.nRoutedExperts; e++) mlp(`${p}.mlp.experts.${e}`, c.moeIntermediateSize);
    if (c.nSharedExperts > 0) mlp(`${p}.mlp.shared_experts`, c.moeIntermediateSize * c.nSharedExperts);
  }
  return out;
}

describe('Checkpoint on the fixtures', () => {
  const dirs = [
    ...['llama-tiny', 'llama-bf16', 'deepseek-v3-tiny', 'deepseek-v2-lite-tiny'].map((d) => path.join(FIXTURES, d)),
    path.join(MODELS, 'weft-tiny-code'),
  ];
  for (const d of dirs) {
    it(`${path.basename(d)}: every tensor matches config.json and reads whole`, () => {
      const want = expectedShapes(d);
      const ckpt = Checkpoint.open(d);
      expect(ckpt.files).toEqual([path.join(d, 'model.safetensors')]);
      expect(new Set(ckpt.names())).toEqual(new Set(want.keys()));
      for (const name of ckpt.names()) {
        const t = ckpt.read(name);
        expect(t.shape, name).toEqual(want.get(name));
        expect(t.dtype).toBe('float32');
        expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
        expect(t.data.every(Number.isFinite), name).toBe(true);
      }
      ckpt.close();
    });
  }
});

describe('Checkpoint layouts', () => {
  const a = Float32Array.from({ length: 12 }, (_, i) => i);
  const b = Int32Array.of(7, 8, 9);

  it('routes tensors of a sharded checkpoint through the index', () => {
    const d = dir('sharded');
    writeSafetensors(path.join(d, 'model-00001-of-00002.safetensors'), {
      'a.weight': { dtype: 'F32', shape: [3, 4], data: a },
    });
    writeSafetensors(path.join(d, 'model-00002-of-00002.safetensors'), {
      'b.ids': { dtype: 'I32', shape: [3], data: b },
    });
    fs.writeFileSync(
      path.join(d, 'model.safetensors.index.json'),
      JSON.stringify({
        metadata: { total_size: 60 },
        weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.ids': 'model-00002-of-00002.safetensors' },
      }),
    );
    const ckpt = Checkpoint.open(d);
    expect(ckpt.names().sort()).toEqual(['a.weight', 'b.ids']);
    expect(ckpt.has('b.ids')).toBe(true);
    expect(ckpt.has('c')).toBe(false);
    expect(ckpt.fileOf('b.ids')).toBe(path.join(d, 'model-00002-of-00002.safetensors'));
    expect(ckpt.info('a.weight')).toEqual({ dtype: 'F32', shape: [3, 4], byteLength: 48 });
    expect(Array.from(ckpt.read('b.ids').data)).toEqual([7, 8, 9]);
    expect(Array.from(ckpt.narrow('a.weight', 1, 1, 2).data)).toEqual([1, 2, 5, 6, 9, 10]);
    expect(Array.from(ckpt.narrow('a.weight', 0, 2, 1).data)).toEqual([8, 9, 10, 11]);
    expect(() => ckpt.read('c')).toThrow(/sharded: checkpoint has no tensor named 'c'/);
    ckpt.close();
  });

  it('names a shard the index lists but the directory lacks', () => {
    const d = dir('missing-shard');
    writeSafetensors(path.join(d, 'one.safetensors'), { x: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
    fs.writeFileSync(
      path.join(d, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { x: 'one.safetensors', y: 'two.safetensors' } }),
    );
    expect(() => Checkpoint.open(d)).toThrow(CheckpointError);
    expect(() => Checkpoint.open(d)).toThrow(/shard file 'two\.safetensors' is listed in weight_map but missing/);
  });

  it('rejects an index that points a tensor at the wrong shard, or has no weight_map', () => {
    const d = dir('wrong-shard');
    writeSafetensors(path.join(d, 'one.safetensors'), { x: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { z: 'one.safetensors' } }));
    expect(() => Checkpoint.open(d)).toThrow(/puts 'z' in one\.safetensors, but that file has no such tensor/);
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {} }));
    expect(() => Checkpoint.open(d)).toThrow(/missing the weight_map/);
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), '{ nope');
    expect(() => Checkpoint.open(d)).toThrow(/cannot read index JSON/);
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { x: '../one.safetensors' } }));
    expect(() => Checkpoint.open(d)).toThrow(/bad shard file/);
  });

  it('opens every *.safetensors of a directory without an index', () => {
    const d = dir('no-index');
    writeSafetensors(path.join(d, 'part-b.safetensors'), { b: { dtype: 'I32', shape: [3], data: b } });
    writeSafetensors(path.join(d, 'part-a.safetensors'), { a: { dtype: 'F32', shape: [3, 4], data: a } });
    fs.writeFileSync(path.join(d, 'README.md'), 'not weights');
    const ckpt = Checkpoint.open(d);
    expect(ckpt.files.map((f) => path.basename(f))).toEqual(['part-a.safetensors', 'part-b.safetensors']);
    expect(ckpt.names().sort()).toEqual(['a', 'b']);
    expect(Array.from(ckpt.read('b').data)).toEqual([7, 8, 9]);
    ckpt.close();
  });

  it('rejects a tensor present in two files', () => {
    const d = dir('duplicate');
    writeSafetensors(path.join(d, 'x1.safetensors'), { a: { dtype: 'I32', shape: [3], data: b } });
    writeSafetensors(path.join(d, 'x2.safetensors'), { a: { dtype: 'I32', shape: [3], data: b } });
    expect(() => Checkpoint.open(d)).toThrow(/tensor 'a' is in both .*x1\.safetensors and .*x2\.safetensors/);
  });

  it('says what it looked for in a directory without weights', () => {
    const d = dir('empty');
    fs.writeFileSync(path.join(d, 'config.json'), '{}');
    expect(() => Checkpoint.open(d)).toThrow(CheckpointError);
    expect(() => Checkpoint.open(d)).toThrow(/no weights found \(looked for model\.safetensors, model\.safetensors\.index\.json and \*\.safetensors\)/);
    expect(() => Checkpoint.open(path.join(tmp, 'does-not-exist'))).toThrow(/does-not-exist: checkpoint directory does not exist/);
  });

  it('opens a single .safetensors file path too', () => {
    const p = path.join(FIXTURES, 'llama-tiny/model.safetensors');
    const ckpt = Checkpoint.open(p);
    expect(ckpt.has('lm_head.weight')).toBe(true);
    ckpt.close();
  });

  it('passes a corrupt shard header through as a CheckpointError naming the shard', () => {
    const d = dir('corrupt-shard');
    fs.writeFileSync(path.join(d, 'model.safetensors'), Buffer.from('garbage!garbage!'));
    expect(() => Checkpoint.open(d)).toThrow(/corrupt-shard\/model\.safetensors: header length/);
  });
});

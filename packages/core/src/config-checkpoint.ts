/**
 * config.json checked against the checkpoint it describes, before anything
 * is built from it. Sizes in the config decide allocations (layers, caches,
 * tables); a hostile or mistaken config (num_hidden_layers 1e9, a vocab_size
 * the embedding does not have) must fail here, naming the field and the
 * tensor, not after gigabytes are allocated or with a bare "Invalid typed
 * array length". Only tensor headers are read.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
import { ConfigError } from './errors.js';
import { type ModelConfig, loadModelConfig } from './hf-config.js';

/** What the check reads from a checkpoint: names and shapes. */
export interface TensorShapes {
  names(): string[];
  info(name: string): { shape: readonly number[] };
}

/** `loadModelConfig`, then (when the directory holds weights) the config's sizes checked against them. */
export function loadCheckedModelConfig(dir: string): ModelConfig {
  const config = loadModelConfig(dir);
  if (!hasWeights(dir)) return config;
  const ckpt = Checkpoint.open(dir);
  try {
    checkConfigAgainstCheckpoint(config, ckpt, dir);
  } finally {
    ckpt.close();
  }
  return config;
}

/** Throws a ConfigError naming the config field and the tensor whose sizes disagree. */
export function checkConfigAgainstCheckpoint(config: ModelConfig, ckpt: TensorShapes, source: string): void {
  const names = ckpt.names();
  const shape = (n: string) => (names.includes(n) ? [...ckpt.info(n).shape] : null);
  const bad = (field: string, value: number, tensor: string, got: number[], why: string) =>
    new ConfigError(`${source}: config.json "${field}"=${value} does not match the checkpoint: ${tensor} has shape ${JSON.stringify(got)} (${why})`);

  const layers = new Set<number>();
  for (const n of names) {
    const m = /^model\.layers\.(\d+)\./.exec(n);
    if (m) layers.add(Number(m[1]));
  }
  // Layers past num_hidden_layers may exist (DeepSeek's multi-token-prediction layers); fewer may not.
  const missing = config.numHiddenLayers > layers.size ? config.numHiddenLayers - layers.size : 0;
  if (layers.size > 0 && (missing > 0 || !layers.has(config.numHiddenLayers - 1))) {
    const held = [...layers].sort((a, b) => a - b);
    throw new ConfigError(
      `${source}: config.json "num_hidden_layers"=${config.numHiddenLayers}, but the checkpoint holds ${layers.size} layer(s) (model.layers.${held[0]}..${held.at(-1)})`,
    );
  }

  const embed = 'model.embed_tokens.weight';
  const e = shape(embed);
  if (e) {
    if (e[0] !== config.vocabSize) throw bad('vocab_size', config.vocabSize, embed, e, 'rows are the vocabulary');
    if (e[1] !== config.hiddenSize) throw bad('hidden_size', config.hiddenSize, embed, e, 'columns are hidden_size');
  }

  if (config.family !== 'llama' && config.family !== 'gemma2') return;
  const attn = 'model.layers.0.self_attn';
  const o = shape(`${attn}.o_proj.weight`);
  const qSize = config.numAttentionHeads * config.headDim;
  if (o && o[1] !== qSize) {
    throw bad('num_attention_heads', config.numAttentionHeads, `${attn}.o_proj.weight`, o, `expected ${config.numAttentionHeads} heads × head_dim ${config.headDim} = ${qSize} columns`);
  }
  const k = shape(`${attn}.k_proj.weight`);
  const kvSize = config.numKeyValueHeads * config.headDim;
  if (k && k[0] !== kvSize) {
    throw bad('num_key_value_heads', config.numKeyValueHeads, `${attn}.k_proj.weight`, k, `expected ${config.numKeyValueHeads} KV heads × head_dim ${config.headDim} = ${kvSize} rows`);
  }
  const qkv = shape(`${attn}.qkv_proj.weight`);
  if (qkv && qkv[0] !== qSize + 2 * kvSize) {
    throw bad('num_key_value_heads', config.numKeyValueHeads, `${attn}.qkv_proj.weight`, qkv, `expected (${config.numAttentionHeads} + 2 × ${config.numKeyValueHeads}) heads × head_dim ${config.headDim} = ${qSize + 2 * kvSize} rows`);
  }
  const down = shape('model.layers.0.mlp.down_proj.weight');
  if (down && down[1] !== config.intermediateSize) {
    throw bad('intermediate_size', config.intermediateSize, 'model.layers.0.mlp.down_proj.weight', down, 'columns are intermediate_size');
  }
}

function hasWeights(dir: string): boolean {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return false;
  return existsSync(join(dir, SINGLE_FILE)) || existsSync(join(dir, INDEX_FILE)) || readdirSync(dir).some((f) => f.endsWith('.safetensors'));
}

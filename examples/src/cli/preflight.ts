/**
 * Checks made before any rank starts, so a bad command line fails at once
 * with one line: the model path is a directory with a config.json, the
 * layout fits the model (heads, KV heads, layers, experts divide as the
 * parallel layers need), the weight options fit the checkpoint (a
 * quantization finds weights to quantize), and a --trace file can be written.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkDenseFamilyLayout, checkMoeFamilyLayout, ConfigError, divide, loadCheckedModelConfig, resolveModelWeightFormat, type ModelConfig, type WeightFormat } from '@weft/core';

export function checkModelDir(dir: string): void {
  if (!existsSync(dir)) throw new ConfigError(`--model ${dir}: no such directory`);
  if (!statSync(dir).isDirectory()) throw new ConfigError(`--model ${dir}: not a directory (give the Hugging Face model directory that holds config.json)`);
  if (!existsSync(resolve(dir, 'config.json'))) throw new ConfigError(`--model ${dir}: no config.json in it (not a Hugging Face model directory)`);
}

/** A text prompt needs the model's tokenizer.json: say so before any rank starts (and which option takes ids). */
export function checkTextPrompt(dir: string, what: string): void {
  checkModelDir(dir);
  if (!existsSync(resolve(dir, 'tokenizer.json'))) throw new ConfigError(`--model ${dir} has no tokenizer.json, so ${what} cannot be tokenized: give the prompt as token ids (--ids 1,2,3)`);
}

/** The shape checks the parallel layers would make on every rank, made once here. */
export function checkLayout(config: ModelConfig, layout: { tp: number; pp: number; dp: number; ep: boolean }): void {
  const { tp, pp, dp, ep } = layout;
  divide(config.numAttentionHeads, tp, 'num_attention_heads');
  if (config.family === 'llama' || config.family === 'gemma2') {
    checkDenseFamilyLayout(config, tp, pp);
  } else if (config.family === 'qwen3_moe' || config.family === 'mixtral') {
    checkMoeFamilyLayout(config, { tp, ep });
  } else if (config.family === 'deepseek') {
    if (ep) {
      const epSize = tp * dp;
      if (epSize > config.nRoutedExperts) throw new ConfigError(`expert parallel size tp×dp=${epSize} is more than n_routed_experts=${config.nRoutedExperts}`);
    } else divide(config.moeIntermediateSize, tp, 'moe_intermediate_size');
    if (config.firstKDenseReplace > 0) divide(config.intermediateSize, tp, 'intermediate_size');
  }
  if (pp > config.numHiddenLayers) throw new ConfigError(`pp=${pp} is more than num_hidden_layers=${config.numHiddenLayers}: each pipeline stage needs at least one layer`);
}

export function preflight(dir: string, layout: { tp?: number; pp?: number; dp?: number; ep?: boolean }, weights: { dtype?: string; quantization?: string } = {}): ModelConfig {
  checkModelDir(dir);
  const config = loadCheckedModelConfig(dir);
  checkLayout(config, { tp: layout.tp ?? 1, pp: layout.pp ?? 1, dp: layout.dp ?? 1, ep: layout.ep ?? false });
  checkWeightFormat(dir, weights);
  return config;
}

/** --dtype / --quantization against the checkpoint (headers only): e.g. int4 with no weight to quantize. */
export function checkWeightFormat(dir: string, weights: { dtype?: string; quantization?: string }): WeightFormat {
  try {
    return resolveModelWeightFormat(dir, weights);
  } catch (e) {
    throw new ConfigError(`--model ${dir}: ${(e as Error).message.replace(`${dir}: `, '')}`);
  }
}

/** A --trace path must be writable before the run, not after it. */
export function checkWritable(file: string, flag: string): void {
  const path = resolve(file);
  if (existsSync(path)) {
    if (statSync(path).isDirectory()) throw new ConfigError(`${flag} ${file}: is a directory; give a file name`);
    try {
      accessSync(path, constants.W_OK);
    } catch {
      throw new ConfigError(`${flag} ${file}: cannot be written (permission denied)`);
    }
    return;
  }
  const parent = dirname(path);
  if (!existsSync(parent) || !statSync(parent).isDirectory()) throw new ConfigError(`${flag} ${file}: the directory ${parent} does not exist`);
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    throw new ConfigError(`${flag} ${file}: cannot create a file in ${parent} (permission denied)`);
  }
}

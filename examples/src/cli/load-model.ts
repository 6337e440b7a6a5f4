/** Open any supported Hugging Face model directory with the right model package. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadModelConfig } from '@weft/core';
import type { LLMEngine } from '@weft/layers';
import { LLM as DeepseekLLM } from '@weft/deepseek';
import { LLM as LlamaLLM, type LLMOptions } from '@weft/llama';

/** The model that ships with the repo: weft-tiny-code (6.5 M parameters, writes Python). */
export function defaultModelDir(): string {
  for (const rel of ['../../models/weft-tiny-code', '../../../models/weft-tiny-code']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new ConfigError('the embedded model models/weft-tiny-code was not found next to the weft CLI; pass --model DIR');
}

export async function loadModel(dir: string, opts: LLMOptions): Promise<LLMEngine> {
  if (!existsSync(dir)) throw new ConfigError(`--model ${dir}: no such directory`);
  const config = loadModelConfig(dir);
  switch (config.family) {
    case 'llama':
      return LlamaLLM.load(dir, opts);
    case 'deepseek':
      return DeepseekLLM.load(dir, opts);
  }
}

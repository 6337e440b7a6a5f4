/** Open any supported Hugging Face model directory: @weft/engine's registry picks the model by config.json `architectures`. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@weft/core';
import { LLM, type LLMOptions } from '@weft/engine';

/** The model that ships with the repo: weft-tiny-code (6.5 M parameters, writes Python). */
export function defaultModelDir(): string {
  for (const rel of ['../../models/weft-tiny-code', '../../../models/weft-tiny-code']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new ConfigError('the embedded model models/weft-tiny-code was not found next to the weft CLI; pass --model DIR');
}

export async function loadModel(dir: string, opts: LLMOptions): Promise<LLM> {
  if (!existsSync(dir)) throw new ConfigError(`--model ${dir}: no such directory`);
  const llm = await LLM.load(dir, opts);
  // Listed once, at load: what the quantization left unquantized and why (input dim not whole blocks of 32).
  if (llm.unquantizedWeights.length > 0) {
    process.stderr.write(`weft: ${llm.unquantizedWeights.length} weight(s) kept unquantized: ${llm.unquantizedWeights.join('; ')}\n`);
  }
  return llm;
}

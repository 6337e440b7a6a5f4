/** Every id that ends generation: config.json's eos_token_id, generation_config.json's, and the tokenizer's. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig, Tokenizer } from '@weft/core';

export function readEosTokenIds(modelDir: string, config: Pick<ModelConfig, 'eosTokenId'>, tokenizer: Pick<Tokenizer, 'eosTokenIds'> | null): number[] {
  const ids = new Set<number>();
  const add = (v: unknown) => {
    for (const x of [v].flat()) if (typeof x === 'number' && Number.isInteger(x) && x >= 0) ids.add(x);
  };
  add(config.eosTokenId);
  try {
    add((JSON.parse(readFileSync(join(modelDir, 'generation_config.json'), 'utf8')) as { eos_token_id?: unknown }).eos_token_id);
  } catch {
    /* no generation_config.json */
  }
  for (const t of tokenizer?.eosTokenIds ?? []) ids.add(t);
  return [...ids].sort((a, b) => a - b);
}

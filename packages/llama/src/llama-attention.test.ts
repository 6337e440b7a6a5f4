import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '@weft/core';
import { ropeTableLength } from './llama-attention.js';

const base = { model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4 };
const config = (extra: Record<string, unknown>) => {
  const c = parseModelConfig({ ...base, ...extra }, 'x');
  if (c.family !== 'llama') throw new Error(c.family);
  return c;
};

describe('rotary table length', () => {
  it('stops at the engine maxModelLen below max_position_embeddings (a hostile 2e7 costs gigabytes per rank otherwise)', () => {
    const c = config({ max_position_embeddings: 2e7 });
    expect(ropeTableLength(c)).toBe(2e7);
    expect(ropeTableLength(c, 4096)).toBe(4096);
    expect(ropeTableLength(config({ max_position_embeddings: 512 }), 4096)).toBe(512);
  });
  it('keeps max_position_embeddings for dynamic NTK, whose frequencies depend on it', () => {
    expect(ropeTableLength(config({ max_position_embeddings: 2048, rope_scaling: { type: 'dynamic', factor: 2 } }), 64)).toBe(2048);
  });
});

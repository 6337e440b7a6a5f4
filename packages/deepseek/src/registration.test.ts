import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ParallelState } from '@weft/comm';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

describe('DeepSeek registration', () => {
  it('serves DeepSeek V2 and V3 architectures', () => {
    expect(registration.architectures).toEqual(['DeepseekV2ForCausalLM', 'DeepseekV3ForCausalLM']);
  });
  it('refuses a checkpoint of another family before building anything', () => {
    expect(() => registration.createModel(fixture('llama-tiny'), {} as ParallelState)).toThrow(/holds a llama model, not DeepSeek/);
  });
});

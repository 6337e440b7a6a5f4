import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ParallelState } from '@weft/comm';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

describe('Llama registration', () => {
  it('serves Llama and Mistral architectures', () => {
    expect(registration.architectures).toEqual(['LlamaForCausalLM', 'MistralForCausalLM']);
  });
  it('refuses a checkpoint of another family before building anything', () => {
    expect(() => registration.createModel(fixture('deepseek-v3-tiny'), {} as ParallelState)).toThrow(/holds a deepseek model, not Llama/);
  });
});

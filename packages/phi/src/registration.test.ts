import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ParallelState } from '@weft/comm';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

describe('Phi-3 registration', () => {
  it('serves Phi3ForCausalLM', () => {
    expect(registration.architectures).toEqual(['Phi3ForCausalLM']);
  });
  it('refuses a checkpoint of another family before building anything', () => {
    expect(() => registration.createModel(fixture('qwen2-tiny'), {} as ParallelState)).toThrow(/model_type qwen2 is not Phi-3/);
  });
});

import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ParallelState } from '@weft/comm';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

describe('Mixtral registration', () => {
  it('serves MixtralForCausalLM', () => {
    expect(registration.architectures).toEqual(['MixtralForCausalLM']);
  });
  it('refuses a checkpoint of another family before building anything', () => {
    expect(() => registration.createModel(fixture('qwen3-moe-tiny'), {} as ParallelState)).toThrow(/holds a qwen3_moe model, not Mixtral/);
  });
});

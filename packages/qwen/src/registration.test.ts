import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ParallelState } from '@weft/comm';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

describe('Qwen registration', () => {
  it('serves Qwen2 and Qwen3', () => {
    expect(registration.architectures).toEqual(expect.arrayContaining(['Qwen2ForCausalLM', 'Qwen3ForCausalLM']));
  });
  it('refuses a checkpoint of another family before building anything', () => {
    expect(() => registration.createModel(fixture('phi3-tiny'), {} as ParallelState)).toThrow(/model_type phi3 is not a Qwen model this package builds/);
  });
});

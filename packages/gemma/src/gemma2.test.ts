import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ParallelState } from '@weft/comm';
import { roundToDtype } from './gemma2.js';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

describe('Gemma 2', () => {
  it('serves Gemma2ForCausalLM and refuses another family before building anything', () => {
    expect(registration.architectures).toEqual(['Gemma2ForCausalLM']);
    expect(() => registration.createModel(fixture('qwen3-tiny'), {} as ParallelState)).toThrow(/model_type qwen3 is not Gemma 2/);
  });
  it('scales embeddings by √hidden as the model dtype holds it (HF: a tensor of hidden_states.dtype)', () => {
    // Gemma 2 2B (2304): 48 in every dtype; 9B (3584): 59.866… → bf16 59.75, fp16 59.875; 27B (4608): 67.88… → bf16 68.
    expect(roundToDtype(Math.sqrt(2304), 'bfloat16')).toBe(48);
    expect(roundToDtype(Math.sqrt(3584), 'bfloat16')).toBe(59.75);
    expect(roundToDtype(Math.sqrt(3584), 'float16')).toBe(59.875);
    expect(roundToDtype(Math.sqrt(4608), 'bfloat16')).toBe(68);
    expect(roundToDtype(Math.sqrt(3584), 'float32')).toBe(Math.fround(Math.sqrt(3584)));
  });
});

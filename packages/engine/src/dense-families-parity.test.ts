/**
 * The dense families equal Hugging Face on their fixtures: Qwen2 (q/k/v
 * biases), Qwen3 (q/k norm, head_dim ≠ hidden/heads), Phi-3 (fused
 * checkpoint tensors), Gemma 2 (sandwich norms, soft-capping, alternate
 * sliding layers, tied head) and Mistral with a window shorter than the
 * prompt. Logits within the fixtures' bounds, greedy tokens where the
 * reference margin allows, decode through the paged cache equal to the
 * full-sequence forward.
 *
 * Layouts: tp 1, tp 2 × pp 2 (TP sharding and a pipeline boundary in one
 * start) and tp 4 (2 KV heads each replicated on 2 ranks) on every backend;
 * tp 2 and pp 2 alone are the same code paths again and run in `test:full`
 * (WEFT_FULL_MATRIX=1).
 */
import { afterAll, describe, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { loadFixtureCases, parityBackends } from '@weft/layers';
import { expectHfParity } from '../test-support/hf-parity.js';
import { LLM } from './llm.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

const FULL = process.env['WEFT_FULL_MATRIX'] === '1';
const LAYOUTS = [{ tp: 1, pp: 1 }, { tp: 2, pp: 2 }, { tp: 4, pp: 1 }, ...(FULL ? [{ tp: 2, pp: 1 }, { tp: 1, pp: 2 }] : [])];
const FIXTURES = (process.env['WEFT_FAMILIES'] ?? 'qwen2-tiny,qwen3-tiny,phi3-tiny,gemma2-tiny,mistral-swa-tiny').split(',');

describe.each(parityBackends())('on $backend', ({ backend, skip }) => {
  if (skip) {
    it.skip(skip, () => {});
    console.log(skip);
    return;
  }
  describe.each(FIXTURES)('%s matches Hugging Face', (name) => {
    const dir = fixtureDir(name);
    const cases = loadFixtureCases(dir);
    const open: LLM[] = [];
    afterAll(async () => {
      await Promise.all(open.map((l) => l.close()));
    });

    it.each(LAYOUTS)('tp=$tp pp=$pp', async ({ tp, pp }) => {
      const llm = await LLM.load(dir, { tp, pp, backend });
      open.push(llm);
      await expectHfParity(llm, cases);
      await llm.close();
      open.pop();
    });
  });
});

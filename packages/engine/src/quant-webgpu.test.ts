/**
 * Packed weights on the webgpu backend (no CPU kernel there: dequantized or
 * widened per op into tfjs's WebGPU matmul; the fused WebGPU step refuses
 * packed weights, so the tfjs path runs) equal the weight-only references at
 * the fixture bound. Runs on whatever adapter Dawn finds (Mesa's OpenGL in CI).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FixtureCase } from '@weft/layers';
import { expect, it } from 'vitest';
import { expectFixtureParity } from './fixture-parity.js';
import { LLM, type LLMOptions } from './llm.js';

const dir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

it.each([
  ['llama-tiny', 'expected-q4_0.json', { quantization: 'int4' }],
  ['llama-tiny', 'expected-q8_0.json', { quantization: 'int8', tp: 2 }],
  ['deepseek-v3-tiny', 'expected-q4_0.json', { quantization: 'int4' }],
  ['llama-bf16', 'expected.json', { dtype: 'bfloat16' }],
] as [string, string, LLMOptions][])('webgpu: %s %s %j', async (fixture, file, opts) => {
  const cases = (JSON.parse(readFileSync(join(dir(fixture), file), 'utf8')) as { cases: FixtureCase[] }).cases;
  const llm = await LLM.load(dir(fixture), { ...opts, backend: 'webgpu', timeoutMs: 120_000 });
  try {
    expect(llm.backend).toBe('webgpu');
    const worst = await expectFixtureParity(llm, cases, undefined, 3);
    console.log(`webgpu ${fixture} ${file} ${JSON.stringify(opts)}: max |Δ| ${worst.maxAbs.toExponential(2)}, rel L2 ${worst.relL2.toExponential(2)}`);
  } finally {
    await llm.close();
  }
}, 600_000);

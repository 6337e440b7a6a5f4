/** The real engine for tests (@weft/engine's LLM: real ranks, real weights) and the fixtures' expected outputs. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LLM, type LLMOptions } from '@weft/engine';
import type { EngineClient } from '../engine-client.js';

export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const tinyCode = join(repoRoot, 'models/weft-tiny-code');
export const llamaTiny = join(repoRoot, 'fixtures/llama-tiny');

export interface TinyCodeCase {
  prompt: string;
  input_ids: number[];
  greedy: number[];
  greedy_text: string;
}

export const tinyCodeCases = (): TinyCodeCase[] => (JSON.parse(readFileSync(join(tinyCode, 'expected.json'), 'utf8')) as { cases: TinyCodeCase[] }).cases;
export const llamaTinyCases = (): { input_ids: number[]; greedy: number[] }[] => (JSON.parse(readFileSync(join(llamaTiny, 'expected.json'), 'utf8')) as { cases: { input_ids: number[]; greedy: number[] }[] }).cases;

export async function loadEngine(dir: string, opts: LLMOptions = {}): Promise<EngineClient & LLM> {
  return LLM.load(dir, opts);
}

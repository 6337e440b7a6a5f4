/**
 * Which model package builds a checkpoint, keyed by config.json
 * `architectures` (vLLM's ModelRegistry). Each model package exports a
 * `registration`; adding a model is one line here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParallelState } from '@weft/comm';
import { ConfigError } from '@weft/core';
import type { CausalLMRank } from '@weft/layers';
import { registration as deepseek } from '@weft/deepseek';
import { registration as llama } from '@weft/llama';

export interface ModelRegistration {
  readonly architectures: readonly string[];
  createModel(modelDir: string, state: ParallelState, opts?: Record<string, unknown>): CausalLMRank | Promise<CausalLMRank>;
}

const registry = new Map<string, ModelRegistration>();

/** Register a model package (the built-in ones are registered on import). */
export function registerModel(reg: ModelRegistration): void {
  for (const a of reg.architectures) registry.set(a, reg);
}

registerModel(llama);
registerModel(deepseek);

export function supportedArchitectures(): string[] {
  return [...registry.keys()].sort();
}

/** The first of the config's `architectures` that a registered package serves. */
export function resolveArchitecture(modelDir: string): string {
  const file = join(modelDir, 'config.json');
  let archs: unknown;
  try {
    archs = (JSON.parse(readFileSync(file, 'utf8')) as { architectures?: unknown }).architectures;
  } catch (e) {
    throw new ConfigError(`${file}: cannot read (${(e as Error).message})`);
  }
  const list = Array.isArray(archs) ? archs.filter((a): a is string => typeof a === 'string') : [];
  const hit = list.find((a) => registry.has(a));
  if (!hit) {
    throw new ConfigError(
      `${file}: architectures ${JSON.stringify(archs ?? null)} has no model weft supports (supported: ${supportedArchitectures().join(', ')})`,
    );
  }
  return hit;
}

export function modelRegistration(architecture: string): ModelRegistration {
  const reg = registry.get(architecture);
  if (!reg) throw new ConfigError(`no model registered for architecture ${architecture} (supported: ${supportedArchitectures().join(', ')})`);
  return reg;
}

/**
 * Which model package builds a checkpoint, keyed by config.json
 * `architectures` (vLLM's ModelRegistry). Each model package exports a
 * `registration`; adding a built-in model is one line here (an import and a
 * `registerModel`). Models from outside register by module, so that every rank
 * imports them too.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ParallelState } from '@weft/comm';
import { ConfigError } from '@weft/core';
import type { CausalLMRank } from '@weft/layers';
import { registration as deepseek } from '@weft/deepseek';
import { registration as llama } from '@weft/llama';
import { registration as gemma } from '@weft/gemma';
import { registration as phi } from '@weft/phi';
import { registration as qwen } from '@weft/qwen';
import { registration as mixtral } from '@weft/mixtral';

export interface ModelRegistration {
  readonly architectures: readonly string[];
  createModel(modelDir: string, state: ParallelState, opts?: Record<string, unknown>): CausalLMRank | Promise<CausalLMRank>;
}

/**
 * Where every rank finds a model registered by module (vLLM's out-of-tree
 * `ModelRegistry.register_model("Arch", "pkg.module:Class")`): each rank,
 * thread or process, imports `specifier` and takes its export `exportName`.
 */
export interface ModelModule {
  /** A bare package specifier (`my-models/gpt2`), an absolute path, or a `file:` URL. */
  readonly specifier: string;
  readonly exportName: string;
}

const registry = new Map<string, ModelRegistration | ModelModule>();
const imported = new Map<string, Promise<ModelRegistration>>();

/**
 * Register a model. An object (`registerModel(registration)`) is known in this
 * thread only: the built-in packages below are registered on import, so every
 * rank has them. A model of your own reaches every rank when registered by
 * module: `registerModel(['Gpt2LMHeadModel'], 'my-models/gpt2', 'registration')`.
 */
export function registerModel(reg: ModelRegistration): void;
export function registerModel(architectures: string | readonly string[], specifier: string, exportName?: string): void;
export function registerModel(a: ModelRegistration | string | readonly string[], specifier?: string, exportName = 'registration'): void {
  if (typeof a === 'object' && !Array.isArray(a)) {
    const reg = a as ModelRegistration;
    for (const arch of reg.architectures) registry.set(arch, reg);
    return;
  }
  const archs = typeof a === 'string' ? [a] : (a as readonly string[]);
  if (archs.length === 0 || archs.some((x) => typeof x !== 'string' || x === '')) throw new ConfigError('registerModel: architectures must be non-empty strings');
  if (typeof specifier !== 'string' || specifier === '') throw new ConfigError('registerModel: give the module every rank imports (a package name, an absolute path or a file: URL)');
  if (specifier.startsWith('./') || specifier.startsWith('../')) {
    throw new ConfigError(`registerModel: module ${specifier} is relative, and ranks resolve it from elsewhere: pass new URL('${specifier}', import.meta.url).href`);
  }
  const mod: ModelModule = { specifier: isAbsolute(specifier) ? pathToFileURL(specifier).href : specifier, exportName };
  for (const arch of archs) registry.set(arch, mod);
}

registerModel(llama);
registerModel(deepseek);
registerModel(gemma);
registerModel(phi);
registerModel(qwen);
registerModel(mixtral);

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

/** A registration of this thread, registered as an object (the built-in ones). */
export function modelRegistration(architecture: string): ModelRegistration {
  const reg = registry.get(architecture);
  if (!reg) {
    throw new ConfigError(
      `no model registered for architecture ${architecture} in this thread (supported: ${supportedArchitectures().join(', ')}); ` +
        'a model registered with an object on the driver is not seen by ranks: register it by module (registerModel(architectures, specifier, exportName))',
    );
  }
  if (!('createModel' in reg)) throw new ConfigError(`architecture ${architecture} is registered by module ${reg.specifier}: use loadModelRegistration`);
  return reg;
}

/** The module ranks must import for this architecture, or null when they know it already (built in). */
export function modelModuleOf(architecture: string): ModelModule | null {
  const reg = registry.get(architecture);
  return reg && !('createModel' in reg) ? reg : null;
}

/**
 * The registration that builds `architecture`: this thread's, or the one `module`
 * exports (imported once, checked: it must serve the architecture and have createModel).
 * The driver calls it before any rank starts, so a bad module fails there, naming it.
 */
export function loadModelRegistration(architecture: string, module: ModelModule | null = modelModuleOf(architecture)): Promise<ModelRegistration> {
  if (!module) return Promise.resolve(modelRegistration(architecture));
  const key = `${architecture}\0${module.specifier}\0${module.exportName}`;
  let p = imported.get(key);
  if (!p) {
    p = importRegistration(architecture, module);
    imported.set(key, p);
  }
  return p;
}

async function importRegistration(architecture: string, { specifier, exportName }: ModelModule): Promise<ModelRegistration> {
  let m: Record<string, unknown>;
  try {
    m = (await import(specifier)) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`model module ${specifier} (architecture ${architecture}): cannot import it (${(e as Error).message})`);
  }
  const reg = m[exportName] as Partial<ModelRegistration> | undefined;
  if (!reg || typeof reg.createModel !== 'function' || !Array.isArray(reg.architectures)) {
    throw new ConfigError(`model module ${specifier}: export ${exportName} is not a model registration ({ architectures, createModel })`);
  }
  if (!reg.architectures.includes(architecture)) {
    throw new ConfigError(`model module ${specifier}: export ${exportName} serves ${JSON.stringify(reg.architectures)}, not ${architecture}`);
  }
  return reg as ModelRegistration;
}

/** Option parsing shared by the weft commands: one clear line for every bad option. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BACKEND_NAMES, ConfigError, QUANT_FORMAT_OF, QUANTIZATIONS, WEIGHT_DTYPES, type BackendName, type QuantizationOption, type WeightDtype } from '@weft/core';

export class UsageError extends ConfigError {
  override name = 'UsageError';
}

/** vLLM's spellings of the layout options (`vllm serve --tensor-parallel-size 2`, `-tp 2`), taken as weft's own. */
const VLLM_ALIASES: Record<string, string> = {
  '--tensor-parallel-size': '--tp',
  '-tp': '--tp',
  '--pipeline-parallel-size': '--pp',
  '-pp': '--pp',
  '--data-parallel-size': '--dp',
  '-dp': '--dp',
};

export function vllmAlias(a: string): string {
  const eq = a.indexOf('=');
  const name = eq < 0 ? a : a.slice(0, eq);
  const ours = VLLM_ALIASES[name];
  return ours === undefined ? a : ours + (eq < 0 ? '' : a.slice(eq));
}

/**
 * A word where an option belongs: say which option it could be (`weft serve DIR` is vLLM's `vllm serve MODEL`;
 * `weft generate 'def f'` wants --prompt).
 */
function positionalHint(word: string, options: NonNullable<ParseArgsConfig['options']>): string {
  if (options.model && existsSync(join(word, 'config.json'))) return ` (a model directory: give it as --model ${word})`;
  if (options.prompt) return ` (a prompt: give it as --prompt ${JSON.stringify(word)})`;
  return '';
}

export function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>, opts: { modelPositional?: boolean } = {}) {
  // `--tp -1` would read as a missing value followed by an option; join it so the value gets the usual check.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = options.tp ? vllmAlias(argv[i]!) : argv[i]!;
    const next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : null;
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else args.push(a);
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, verbose: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/s, ''));
  }
  const { values, positionals } = parsed;
  // vLLM's `serve MODEL`: one model directory before or between the options, when --model is not given too.
  if (opts.modelPositional && positionals.length === 1 && !('model' in values)) return { values: { ...values, model: positionals[0]! }, positionals: [] };
  if (positionals.length > 0) {
    const word = positionals[0]!;
    throw new UsageError(`unexpected argument '${word}': this command takes only --options${positionalHint(word, options)}`);
  }
  return parsed;
}

export function int(value: unknown, name: string, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be a whole number, got '${String(value)}'`);
  return n;
}

export function positiveInt(value: unknown, name: string, fallback?: number): number | undefined {
  const n = int(value, name, fallback);
  if (n !== undefined && n < 1) throw new UsageError(`--${name} must be at least 1, got ${n}`);
  return n;
}

export function num(value: unknown, name: string, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${String(value)}'`);
  return n;
}

export function ids(value: unknown, name = 'ids'): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = String(value).split(',').map((s) => s.trim()).filter(Boolean);
  const out = parts.map(Number);
  if (out.length === 0 || out.some((x) => !Number.isInteger(x) || x < 0)) {
    throw new UsageError(`--${name} must be a comma-separated list of token ids, e.g. 1,2,3; got '${String(value)}'`);
  }
  return out;
}

export function backend(value: unknown): BackendName | undefined {
  if (value === undefined) return undefined;
  if (!BACKEND_NAMES.includes(value as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}; got '${String(value)}'`);
  }
  return value as BackendName;
}

/** --dtype: how unquantized weights are held (vLLM's name). */
export function dtype(value: unknown): WeightDtype | undefined {
  if (value === undefined) return undefined;
  if (!WEIGHT_DTYPES.includes(value as WeightDtype)) throw new UsageError(`--dtype must be one of ${WEIGHT_DTYPES.join(', ')}; got '${String(value)}'`);
  return value as WeightDtype;
}

/** --quantization: decoder linear weights as llama.cpp blocks (vLLM's name). */
export function quantization(value: unknown): QuantizationOption | undefined {
  if (value === undefined) return undefined;
  if (!QUANTIZATIONS.includes(value as QuantizationOption)) {
    throw new UsageError(`--quantization must be one of ${QUANTIZATIONS.map((q) => `${q} (${QUANT_FORMAT_OF[q]})`).join(', ')}; got '${String(value)}'`);
  }
  return value as QuantizationOption;
}

/** --device-plan: run ranks on the model's device plan (auto, on, off). */
export function devicePlan(value: unknown): 'auto' | boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'auto') return 'auto';
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new UsageError(`--device-plan must be auto, on or off; got '${String(value)}'`);
}

/** Options every model command takes. */
export const MODEL_OPTIONS = {
  model: { type: 'string' },
  tp: { type: 'string' },
  pp: { type: 'string' },
  dp: { type: 'string' },
  'enable-expert-parallel': { type: 'boolean' },
  'moe-dispatch': { type: 'string' },
  backend: { type: 'string' },
  dtype: { type: 'string' },
  quantization: { type: 'string' },
  'device-plan': { type: 'string' },
  timeout: { type: 'string' },
  trace: { type: 'string' },
  'intra-op-threads': { type: 'string' },
  // The scheduler's sizes, under vLLM's flag names.
  'max-model-len': { type: 'string' },
  'max-num-seqs': { type: 'string' },
  'max-num-batched-tokens': { type: 'string' },
  'block-size': { type: 'string' },
  'enable-prefix-caching': { type: 'boolean' },
  'no-enable-prefix-caching': { type: 'boolean' },
} as const;

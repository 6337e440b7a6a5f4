/** Option parsing shared by the weft commands: one clear line for every bad option. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BACKEND_NAMES, ConfigError, QUANT_FORMAT_OF, QUANTIZATIONS, WEIGHT_DTYPES, type BackendName, type QuantizationOption, type WeightDtype } from '@weft/core';

export class UsageError extends ConfigError {
  override name = 'UsageError';
}

export function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>) {
  // `--tp -1` would read as a missing value followed by an option; join it so the value gets the usual check.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : null;
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else args.push(a);
  }
  try {
    return parseArgs({ args, options: { ...options, verbose: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/s, ''));
  }
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
} as const;

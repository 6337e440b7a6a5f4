/**
 * Typed reads of fields from a Hugging Face JSON config, each error naming the
 * field and the file. A field that is absent or null counts as missing, the
 * way transformers treats `None`.
 */
import { ConfigError } from './errors.js';

export type Json = Record<string, unknown>;

export function isJsonObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class ConfigFields {
  constructor(
    readonly json: Json,
    /** File (and section) for errors, e.g. `models/x/config.json` or `config.json rope_scaling`. */
    readonly source: string,
  ) {}

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  /** The raw value, for fields whose null and absence differ. */
  raw(key: string): unknown {
    return this.json[key];
  }

  int(key: string, fallback?: number, min = 1): number {
    const v = this.value(key, fallback);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw this.bad(key, v, min === 1 ? 'a positive integer' : `an integer >= ${min}`);
    }
    return v;
  }

  /** A non-negative integer or null; absent means `fallback`. */
  intOrNull(key: string, fallback: number | null): number | null {
    const v = this.json[key];
    if (v === undefined) return fallback;
    if (v === null) return null;
    return this.int(key, undefined, 0);
  }

  num(key: string, fallback?: number): number {
    const v = this.value(key, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.bad(key, v, 'a finite number');
    return v;
  }

  positive(key: string, fallback?: number): number {
    const v = this.num(key, fallback);
    if (v <= 0) throw this.bad(key, v, 'a positive number');
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.value(key, fallback);
    if (typeof v !== 'boolean') throw this.bad(key, v, 'true or false');
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.value(key, fallback);
    if (typeof v !== 'string') throw this.bad(key, v, 'a string');
    return v;
  }

  /** A string from a fixed set, listing the set when it is something else. */
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback?: T): T {
    const v = this.str(key, fallback);
    if (!(allowed as readonly string[]).includes(v)) {
      throw new ConfigError(`${this.source}: "${key}" is "${v}", expected one of ${allowed.join(', ')}`);
    }
    return v as T;
  }

  /** A token id, a list of them, or null (absent is null too). */
  tokenIds(key: string): number | number[] | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    const isId = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (isId(v)) return v;
    if (Array.isArray(v) && v.every(isId)) return [...v];
    throw this.bad(key, v, 'a token id or a list of token ids');
  }

  private value(key: string, fallback: unknown): unknown {
    const v = this.json[key];
    if (v !== undefined && v !== null) return v;
    if (fallback === undefined) throw new ConfigError(`${this.source}: missing required field "${key}"`);
    return fallback;
  }

  private bad(key: string, v: unknown, want: string): ConfigError {
    return new ConfigError(`${this.source}: "${key}" must be ${want}, got ${JSON.stringify(v) ?? String(v)}`);
  }
}

/**
 * A model directory's tokenizer (`tokenizer.json`, plus `tokenizer_config.json`
 * and `generation_config.json` when present), behind a small interface so the
 * engine never touches the tokenizer library directly.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ConfigError, WeftError } from './errors.js';
import { isJsonObject } from './config-fields.js';

export interface EncodeOptions {
  /** Add the tokenizer's special tokens (e.g. a BOS) as its post-processor says; default true, as in transformers. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, ...) from the text; default false, as in transformers. */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  /** `''` for no ids. */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** One more than the largest token id, added tokens included. */
  readonly vocabSize: number;
  /** At most this many bytes of text become one token: a text longer than this × N bytes has more than N tokens. */
  readonly maxTokenBytes: number;
  readonly bosTokenId?: number;
  /** Every id that ends generation: tokenizer_config's eos_token plus generation_config's eos_token_id. */
  readonly eosTokenIds: number[];
}

/**
 * What builds a directory's tokenizer, as plain data: the parsed tokenizer.json
 * and the options the library gets. A worker thread given this (and `module`,
 * the library's entry) builds the same tokenizer `loadTokenizer` does.
 */
export interface TokenizerSpec {
  module: string;
  json: Record<string, unknown>;
  options: Record<string, unknown>;
}

/** Read a model directory's tokenizer files; each unreadable or malformed file is an error naming it. */
export function readTokenizerSpec(dir: string): TokenizerSpec {
  const tokenizerJson = readJson(path.join(dir, 'tokenizer.json'), true)!;
  const config = readJson(path.join(dir, 'tokenizer_config.json'), false) ?? {};
  // The library cleans up spaces before punctuation unless told not to, which
  // corrupts code ("f(a , b)" -> "f(a, b)"); transformers only does so when the config asks.
  return { module: createRequire(import.meta.url).resolve('@huggingface/tokenizers'), json: tokenizerJson, options: { ...config, clean_up_tokenization_spaces: config['clean_up_tokenization_spaces'] === true } };
}

/**
 * The tokenizer of a directory, or null when it has no tokenizer.json. A tokenizer.json,
 * tokenizer_config.json or generation_config.json that is there but broken is an error naming the file,
 * never a silent "no tokenizer".
 */
export function loadTokenizerIfPresent(dir: string): Tokenizer | null {
  return fs.existsSync(path.join(dir, 'tokenizer.json')) ? loadTokenizer(dir) : null;
}

/** Load the tokenizer of a Hugging Face model directory. */
export function loadTokenizer(dir: string): Tokenizer {
  const spec = readTokenizerSpec(dir);
  const config = spec.options;
  const generation = readJson(path.join(dir, 'generation_config.json'), false) ?? {};
  const configFile = path.join(dir, 'tokenizer_config.json');

  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(spec.json, config);
  } catch (cause) {
    throw new ConfigError(`${path.join(dir, 'tokenizer.json')}: cannot build tokenizer (${(cause as Error).message})`, { cause });
  }

  const idOf = (key: string): number | undefined => {
    const token = tokenContent(config[key]);
    if (token === undefined) return undefined;
    const id = hf.token_to_id(token);
    if (id === undefined) throw new ConfigError(`${configFile}: ${key} "${token}" is not in the tokenizer's vocabulary`);
    return id;
  };

  const eos = new Set<number>();
  const eosId = idOf('eos_token');
  if (eosId !== undefined) eos.add(eosId);
  for (const id of generationIds(generation['eos_token_id'])) eos.add(id);

  let vocabSize = 0;
  // An upper bound on the bytes one token stands for: a token's string is never shorter in UTF-8 than
  // the text it decodes to (byte-level BPE writes each byte as one or two UTF-8 bytes, ▁ is three for one space).
  let maxTokenBytes = 1;
  for (const [token, id] of hf.get_vocab(true)) {
    vocabSize = Math.max(vocabSize, id + 1);
    maxTokenBytes = Math.max(maxTokenBytes, Buffer.byteLength(token));
  }

  return {
    vocabSize,
    maxTokenBytes,
    bosTokenId: idOf('bos_token'),
    eosTokenIds: [...eos],
    encode(text, options = {}) {
      return hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
    },
    decode(ids, options = {}) {
      if (ids.length === 0) return '';
      for (const [i, id] of ids.entries()) {
        if (!Number.isSafeInteger(id) || id < 0) throw new WeftError(`decode: token id ${id} at index ${i} is not a non-negative integer`);
      }
      return hf.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
    },
  };
}

function readJson(file: string, required: boolean): Record<string, unknown> | undefined {
  if (!fs.existsSync(file)) {
    if (required) throw new ConfigError(`${file}: tokenizer file not found`);
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new ConfigError(`${file}: cannot read JSON (${(cause as Error).message})`, { cause });
  }
  if (!isJsonObject(parsed)) throw new ConfigError(`${file}: expected a JSON object`);
  return parsed;
}

/** tokenizer_config.json writes special tokens as a string or as `{content: string, ...}`. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isJsonObject(v) && typeof v['content'] === 'string') return v['content'];
  return undefined;
}

function generationIds(v: unknown): number[] {
  const ids = Array.isArray(v) ? v : [v];
  return ids.filter((x): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0);
}

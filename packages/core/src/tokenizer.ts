/**
 * A model directory's tokenizer (`tokenizer.json`, plus `tokenizer_config.json`
 * and `generation_config.json` when present), behind a small interface so the
 * engine never touches the tokenizer library directly.
 */
import fs from 'node:fs';
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
  readonly bosTokenId?: number;
  /** Every id that ends generation: tokenizer_config's eos_token plus generation_config's eos_token_id. */
  readonly eosTokenIds: number[];
}

/** Load the tokenizer of a Hugging Face model directory. */
export function loadTokenizer(dir: string): Tokenizer {
  const tokenizerJson = readJson(path.join(dir, 'tokenizer.json'), true);
  const config = readJson(path.join(dir, 'tokenizer_config.json'), false) ?? {};
  const generation = readJson(path.join(dir, 'generation_config.json'), false) ?? {};
  const configFile = path.join(dir, 'tokenizer_config.json');

  let hf: HfTokenizer;
  try {
    // The library cleans up spaces before punctuation unless told not to, which
    // corrupts code ("f(a , b)" -> "f(a, b)"); transformers only does so when the config asks.
    hf = new HfTokenizer(tokenizerJson, { ...config, clean_up_tokenization_spaces: config['clean_up_tokenization_spaces'] === true });
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
  for (const id of hf.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);

  return {
    vocabSize,
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

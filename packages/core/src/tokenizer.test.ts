import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { loadTokenizer, loadTokenizerIfPresent, readTokenizerSpec } from './tokenizer.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures', import.meta.url));
const CODE_MODEL = fileURLToPath(new URL('../../../models/weft-tiny-code', import.meta.url));

interface Expected {
  cases: { text: string; ids: number[]; decoded: string }[];
}

describe('loadTokenizer on the byte-level BPE fixture', () => {
  const dir = path.join(FIXTURES, 'tokenizer-bytelevel-bpe');
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  const tok = loadTokenizer(dir);

  for (const c of expected.cases) {
    it(`encodes and decodes ${JSON.stringify(c.text)} exactly`, () => {
      expect(tok.encode(c.text)).toEqual(c.ids);
      expect(tok.decode(c.ids)).toBe(c.decoded);
    });
  }

  it('knows its vocabulary size and has no bos/eos without a tokenizer_config.json', () => {
    expect(tok.vocabSize).toBe(1000);
    expect(tok.bosTokenId).toBeUndefined();
    expect(tok.eosTokenIds).toEqual([]);
  });

  it('decodes [] to the empty string', () => {
    expect(tok.decode([])).toBe('');
    expect(tok.decode([], { skipSpecialTokens: true })).toBe('');
  });

  it('rejects ids that are not non-negative integers, naming them', () => {
    expect(() => tok.decode([5, 1.5])).toThrow(/token id 1\.5 at index 1/);
    expect(() => tok.decode([-1])).toThrow(/token id -1 at index 0/);
  });
});

describe('loadTokenizer on weft-tiny-code', () => {
  const tok = loadTokenizer(CODE_MODEL);

  it('reads bos and eos from tokenizer_config.json', () => {
    expect(tok.bosTokenId).toBe(0);
    expect(tok.eosTokenIds).toEqual([1]);
    expect(tok.vocabSize).toBe(4096);
  });

  it('round-trips Python code byte for byte, spaces before punctuation included', () => {
    const sources = [
      'def fib(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
      'class Linear(nn.Module):\n\tdef __init__(self, d_in: int, d_out: int) -> None:\n\t\tsuper().__init__()\n\t\tself.w = nn.Parameter(torch.empty(d_out, d_in))\n',
      "x = [a , b , c] ; y = x . count ( 'it 's' ) ?  # naïve — 東京 🚀\n\n\n",
      'print(f"{value!r:>10}")\r\n',
      '',
    ];
    for (const src of sources) {
      const ids = tok.encode(src);
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize)).toBe(true);
      expect(tok.decode(ids)).toBe(src);
    }
  });

  it('keeps or skips special tokens on request', () => {
    const ids = [tok.bosTokenId!, ...tok.encode('pass'), 1];
    expect(tok.decode(ids)).toBe('<|begin_of_text|>pass<|end_of_text|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('pass');
    expect(tok.encode('<|end_of_text|>', { addSpecialTokens: false })).toEqual([1]);
  });
});

describe('loadTokenizer configuration', () => {
  function modelDir(files: Record<string, unknown>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-tokenizer-'));
    fs.copyFileSync(path.join(CODE_MODEL, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
    return dir;
  }

  it('adds generation_config eos ids and accepts {content} special tokens', () => {
    const dir = modelDir({
      'tokenizer_config.json': { bos_token: { content: '<|begin_of_text|>' }, eos_token: '<|end_of_text|>' },
      'generation_config.json': { eos_token_id: [1, 7] },
    });
    const tok = loadTokenizer(dir);
    expect(tok.bosTokenId).toBe(0);
    expect(tok.eosTokenIds).toEqual([1, 7]);
    fs.rmSync(dir, { recursive: true });
  });

  it('names a special token missing from the vocabulary, a missing tokenizer.json and bad JSON', () => {
    const dir = modelDir({ 'tokenizer_config.json': { eos_token: '</s>' } });
    expect(() => loadTokenizer(dir)).toThrow(ConfigError);
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer_config\.json: eos_token "<\/s>" is not in the tokenizer's vocabulary/);
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), '{oops');
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer_config\.json: cannot read JSON/);
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer\.json: tokenizer file not found/);
    fs.rmSync(dir, { recursive: true });
  });

  it('loadTokenizerIfPresent: null without tokenizer.json; a broken tokenizer.json, tokenizer_config.json or generation_config.json is an error naming it', () => {
    const dir = modelDir({});
    expect(loadTokenizerIfPresent(dir)).not.toBeNull();
    for (const name of ['tokenizer_config.json', 'generation_config.json']) {
      fs.writeFileSync(path.join(dir, name), '{"eos_token": ');
      expect(() => loadTokenizerIfPresent(dir), name).toThrow(new RegExp(`${name.replace('.', '\\.')}: cannot read JSON`));
      fs.writeFileSync(path.join(dir, name), '[1, 2]');
      expect(() => loadTokenizerIfPresent(dir), name).toThrow(new RegExp(`${name.replace('.', '\\.')}: expected a JSON object`));
      fs.rmSync(path.join(dir, name));
    }
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", "vocab": 7}}');
    expect(() => loadTokenizerIfPresent(dir)).toThrow(/tokenizer\.json: cannot build tokenizer/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '');
    expect(() => loadTokenizerIfPresent(dir)).toThrow(/tokenizer\.json: cannot read JSON/);
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    expect(loadTokenizerIfPresent(dir)).toBeNull();
    fs.rmSync(dir, { recursive: true });
  });
});

describe('maxTokenBytes and readTokenizerSpec', () => {
  it('no token of weft-tiny-code decodes to more bytes than maxTokenBytes', () => {
    const tok = loadTokenizer(CODE_MODEL);
    let longest = 0;
    for (let id = 0; id < tok.vocabSize; id++) longest = Math.max(longest, Buffer.byteLength(tok.decode([id])));
    expect(longest).toBeGreaterThan(1);
    expect(tok.maxTokenBytes).toBeGreaterThanOrEqual(longest);
    // So a text of more than maxTokenBytes × N bytes cannot be N tokens or fewer.
    const text = 'def fibonacci(n):\n    return n\n'.repeat(40);
    expect(tok.encode(text).length * tok.maxTokenBytes).toBeGreaterThanOrEqual(Buffer.byteLength(text));
  });

  it('the spec builds the same tokenizer in a module of its own', async () => {
    const spec = readTokenizerSpec(CODE_MODEL);
    const mod = (await import(spec.module)) as { Tokenizer: new (j: unknown, o: unknown) => { encode(t: string): { ids: number[] } } };
    const text = 'class Tensor(a , b):\n\treturn  x';
    expect(new mod.Tokenizer(spec.json, spec.options).encode(text).ids).toEqual(loadTokenizer(CODE_MODEL).encode(text));
  });
});

/**
 * Each dense family's fixture served with its family's chat template and the
 * EOS ids generation_config.json lists (Qwen and Gemma list several): the
 * template renders through @huggingface/jinja to exactly the family's prompt
 * layout, and generation stops on any listed id, not only the first. The
 * fixtures have weights and no tokenizer: each gets a byte-level BPE
 * tokenizer.json (256 byte tokens, no merges, the family's special tokens),
 * written here, beside a link to the fixture's weights. (These templates are
 * the families' turn layouts, shortened: no tools, no system defaults.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LLM } from '@weft/engine';
import { createServer } from './server.js';
import { repoRoot } from './test-support/engine.js';

interface Family {
  fixture: string;
  specials: string[];
  /** generation_config.json's eos_token_id, as special tokens. */
  eos: string[];
  bos?: string;
  template: string;
  /** What the template makes of one user turn, with the generation prompt. */
  rendered: (bos: string, user: string) => string;
}

/** Qwen2 and Qwen3: ChatML turns, <|im_end|> and <|endoftext|> both end a turn. */
const QWEN_CHATML: Family = {
  fixture: 'qwen2-tiny',
  specials: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
  eos: ['<|im_end|>', '<|endoftext|>'],
  template:
    "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
  rendered: (_b, u) => `<|im_start|>user\n${u}<|im_end|>\n<|im_start|>assistant\n`,
};

const FAMILIES: Family[] = [
  QWEN_CHATML,
  {
    fixture: 'gemma2-tiny',
    specials: ['<pad>', '<eos>', '<bos>', '<start_of_turn>', '<end_of_turn>'],
    eos: ['<eos>', '<end_of_turn>'],
    bos: '<bos>',
    template:
      "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}{{ '<start_of_turn>' + role + '\\n' + m['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
    rendered: (b, u) => `${b}<start_of_turn>user\n${u}<end_of_turn>\n<start_of_turn>model\n`,
  },
  { ...QWEN_CHATML, fixture: 'qwen3-tiny' },
  // The MoE families (families-moe): Qwen3-MoE speaks ChatML, Mixtral Mistral's [INST].
  { ...QWEN_CHATML, fixture: 'qwen3-moe-tiny' },
  {
    fixture: 'phi3-tiny',
    specials: ['<unk>', '<s>', '</s>', '<|user|>', '<|assistant|>', '<|end|>', '<|endoftext|>'],
    eos: ['<|endoftext|>', '<|end|>'],
    template: "{% for m in messages %}{{'<|' + m['role'] + '|>' + '\\n' + m['content'] + '<|end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
    rendered: (_b, u) => `<|user|>\n${u}<|end|>\n<|assistant|>\n`,
  },
  {
    fixture: 'mistral-swa-tiny',
    specials: ['<unk>', '<s>', '</s>', '[INST]', '[/INST]'],
    eos: ['</s>'],
    bos: '<s>',
    template: "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}",
    rendered: (b, u) => `${b}[INST] ${u} [/INST]`,
  },
];
FAMILIES.push({ ...FAMILIES.find((f) => f.fixture === 'mistral-swa-tiny')!, fixture: 'mixtral-tiny' });

/** GPT-2's byte → printable character map, as byte-level BPE vocabularies key their tokens. */
function bytesToUnicode(): string[] {
  const keep = [...Array.from({ length: 94 }, (_, i) => 33 + i), ...Array.from({ length: 12 }, (_, i) => 161 + i), ...Array.from({ length: 82 }, (_, i) => 174 + i)];
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep.includes(b) ? b : 256 + extra++));
  return out;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-dense-chat-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The fixture with a tokenizer, the family's template, and `eos` (+ `extraEos`) in generation_config.json. */
function modelDir(f: Family, extraEos: number[] = []): string {
  const dir = fs.mkdtempSync(path.join(tmp, `${f.fixture}-`));
  const fixture = path.join(repoRoot, 'fixtures', f.fixture);
  const specialId = (t: string) => 256 + f.specials.indexOf(t);
  const vocab = Object.fromEntries(bytesToUnicode().map((c, i) => [c, i]));
  const added = f.specials.map((content, i) => ({ id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: { ...vocab, ...Object.fromEntries(added.map((a) => [a.content, a.id])) }, merges: [] },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: f.template, eos_token: f.eos[0], ...(f.bos ? { bos_token: f.bos } : {}) }));
  const eos = [...f.eos.map(specialId), ...extraEos];
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: eos }));
  const config = JSON.parse(fs.readFileSync(path.join(fixture, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, eos_token_id: eos[0], bos_token_id: f.bos ? specialId(f.bos) : null }));
  fs.symlinkSync(path.join(fixture, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  return dir;
}

async function serve(dir: string): Promise<{ url: string; llm: LLM; close: () => Promise<void> }> {
  const llm = await LLM.load(dir, { backend: 'wasm' });
  const server = await createServer(llm, { modelDir: dir });
  const url = await server.listen({ port: 0 });
  return { url, llm, close: async () => {
    await server.shutdown({ graceMs: 1000 });
    await llm.close();
  } };
}

const post = async (url: string, route: string, body: unknown) => {
  const res = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status, `${route}: ${res.status}`).toBe(200);
  return (await res.json()) as Record<string, any>;
};

const USER = 'Hello, how are you?';
const chat = { messages: [{ role: 'user', content: USER }], max_tokens: 6, temperature: 0 };

// CI: the three template styles (ChatML with two EOS ids, Gemma's turns with two, Phi-3's); all five with WEFT_FULL_MATRIX=1.
const RUN = process.env['WEFT_FULL_MATRIX'] === '1' ? FAMILIES : FAMILIES.filter((f) => ['qwen2-tiny', 'gemma2-tiny', 'phi3-tiny', 'qwen3-moe-tiny'].includes(f.fixture));

describe.each(RUN)('$fixture with its chat template and EOS ids', (f) => {
  it('renders the family prompt and stops on any id generation_config.json lists', async () => {
    const first = await serve(modelDir(f));
    let stopAt: number;
    try {
      const tok = await post(first.url, '/tokenize', { messages: chat.messages, add_generation_prompt: true });
      const text = await post(first.url, '/detokenize', { tokens: tok['tokens'] });
      expect(text['prompt']).toBe(f.rendered(f.bos ?? '', USER));
      const plain = await post(first.url, '/v1/chat/completions', chat);
      expect(plain['choices'][0].finish_reason).toBe('length');
      expect(plain['usage'].prompt_tokens).toBe(tok['tokens'].length);
      // The greedy first token of this prompt: listed as one more EOS id, the answer must stop on it at once.
      const rows = await first.llm.logits(tok['tokens'] as number[]);
      const last = rows.at(-1)!;
      stopAt = last.indexOf(Math.max(...last));
    } finally {
      await first.close();
    }
    const second = await serve(modelDir(f, [stopAt]));
    try {
      const stopped = await post(second.url, '/v1/chat/completions', chat);
      expect(stopped['choices'][0]).toMatchObject({ finish_reason: 'stop', message: { content: '' } });
      expect(stopped['choices'][0].stop_reason).toBe(stopAt);
      expect(stopped['usage'].completion_tokens).toBe(1);
    } finally {
      await second.close();
    }
  });
});

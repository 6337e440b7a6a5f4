/**
 * `weft serve` as users run it: the built CLI in its own process, answered
 * by the official openai client; SIGTERM drains and exits 143; with ranks as
 * processes over TCP, a rank killed with SIGKILL shows on /health and makes
 * requests fail fast with a clear error instead of hanging.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'examples/bin/weft.js');

interface Served {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: string | null }>;
}

const started: ChildProcess[] = [];

/** Processes a test left without a parent (node under a killed npx). */
const orphans: number[] = [];

afterEach(() => {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of orphans.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

/** Start `weft serve --port 0 …` (or `npx weft serve …`) and wait for its "at http://…/v1" line. */
function serve(args: string[], via: 'node' | 'npx' = 'node'): Promise<Served> {
  const child =
    via === 'node'
      ? spawn(process.execPath, [bin, 'serve', '--port', '0', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('npx', ['--no-install', 'weft', 'serve', '--port', '0', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let err = '';
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`weft serve did not start:\n${err}`)), 90_000);
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = / at (http:\/\/[^ ]+)\/v1 /.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, stderr: () => err, exited });
      }
    });
    void exited.then(() => reject(new Error(`weft serve exited:\n${err}`)));
  });
}

/** Pids of the rank processes below `pid`, by RANK. */
function rankPids(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  const kids = spawnSync('pgrep', ['-P', String(pid)]).stdout.toString().split('\n').filter(Boolean).map(Number);
  for (const k of kids) {
    try {
      const r = readFileSync(`/proc/${k}/environ`, 'utf8').split('\0').find((e) => e.startsWith('RANK='));
      if (r) out.set(Number(r.slice(5)), k);
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('weft serve', () => {
  it("vLLM's scheduler flags: --max-model-len bounds the context the server reports and checks", async () => {
    const s = await serve([join(root, 'fixtures/llama-tiny'), '--backend', 'cpu', '--max-model-len', '48', '--max-num-seqs', '4', '--max-num-batched-tokens', '32', '--block-size', '8', '--no-enable-prefix-caching']);
    const models = (await (await fetch(`${s.url}/v1/models`)).json()) as { data: { max_model_len: number }[] };
    expect(models.data[0]!.max_model_len).toBe(48);
    const post = (max: number) => fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: [5, 6, 7], max_tokens: max }) });
    const long = await post(46);
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: { message: string } }).error.message).toMatch(/maximum context length is 48 tokens/);
    // Prefix caching off: the same prompt twice finds nothing cached.
    for (let i = 0; i < 2; i++) {
      const r = (await (await post(4)).json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } };
      expect(r.usage.prompt_tokens_details.cached_tokens).toBe(0);
    }
    s.child.kill('SIGTERM');
    expect((await s.exited).code).toBe(143);
  });

  it('weft serve DIR serves DIR (vLLM: vllm serve MODEL); SIGTERM drains and exits 143', async () => {
    const s = await serve([join(root, 'fixtures/llama-tiny'), '--backend', 'cpu']);
    const models = (await (await fetch(`${s.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['llama-tiny']);
    const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: [5, 6, 7], max_tokens: 3 }) });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
    s.child.kill('SIGTERM');
    expect((await s.exited).code).toBe(143);
  });

  it('answers the official client (completion, streamed chat with the template, /metrics); SIGTERM drains and exits 143', async () => {
    const s = await serve(['--api-key', 'sk-cli-test', '--served-model-name', 'tiny']);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-cli-test', maxRetries: 0 });
    const c = await client.completions.create({ model: 'tiny', prompt: 'import torch\n', max_tokens: 16, temperature: 0 });
    expect(c.choices[0]!.text).toBe('import torch.nn as nn\nfrom torch.nn.utils.deepspeed import is_torch_available'.slice(0, c.choices[0]!.text.length));
    expect(c.usage!.completion_tokens).toBe(16);
    const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'add two numbers' }], max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const ch of stream) {
      text += ch.choices[0]?.delta.content ?? '';
      usage = ch.usage ?? usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usage!.completion_tokens).toBe(8);
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: { authorization: 'Bearer sk-cli-test' } })).text();
    expect(metrics).toMatch(/^weft:generation_tokens_total\{model_name="tiny"\} 24$/m);
    expect((await fetch(`${s.url}/v1/models`)).status).toBe(401);
    s.child.kill('SIGTERM');
    expect(await s.exited).toEqual({ code: 143, signal: null });
    expect(s.stderr()).toMatch(/SIGTERM: new requests get 503/);
  });

  it('--backend webgpu --dtype bfloat16 serves Llama (the embedded model) and DeepSeek (MLA, MoE) through the device plan', async () => {
    for (const [name, args, prompt] of [
      ['weft-tiny-code', [], 'def add(a, b):'],
      ['deepseek-v3-tiny', ['--model', join(root, 'fixtures/deepseek-v3-tiny')], [5, 17, 99, 3]],
    ] as const) {
      const s = await serve([...args, '--backend', 'webgpu', '--dtype', 'bfloat16']);
      expect(s.stderr()).toMatch(/weft serve: webgpu backend, 1 rank\(s\), step: plan \(webgpu\)/);
      const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
      const c = await client.completions.create({ model: name, prompt: prompt as string | number[], max_tokens: 8, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
      expect(c.usage!.completion_tokens, name).toBe(8);
      s.child.kill('SIGTERM');
      expect(await s.exited).toEqual({ code: 143, signal: null });
    }
  });

  it('--transport tcp: a rank killed with SIGKILL shows on /health, and requests fail fast with a clear error', async () => {
    const s = await serve(['--model', join(root, 'fixtures/llama-tiny'), '--tp', '2', '--transport', 'tcp', '--backend', 'cpu', '--timeout', '20000']);
    const post = (body: unknown) => fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post({ prompt: [1, 2, 3], max_tokens: 4 })).status).toBe(200);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    // A long request in flight when the rank dies.
    const inflight = post({ prompt: [1, 2, 3], max_tokens: 400, ignore_eos: true }).then(async (r) => ({ status: r.status, body: await r.text() }));
    await new Promise((r) => setTimeout(r, 300));
    const victim = rankPids(s.child.pid!).get(1);
    expect(victim).toBeDefined();
    const killedAt = Date.now();
    process.kill(victim!, 'SIGKILL');
    const lost = await inflight;
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(lost.status).toBe(503);
    expect(lost.body).toMatch(/rank 1/);
    let health: Response;
    do health = await fetch(`${s.url}/health`);
    while (health.status === 200 && Date.now() - killedAt < 15_000);
    expect(health.status).toBe(503);
    const h = (await health.json()) as { error: { message: string } };
    expect(h.error.message).toMatch(/engine is not running.*rank 1/);
    const t0 = Date.now();
    const after = await post({ prompt: [1, 2, 3], max_tokens: 4 });
    expect(after.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(1000);
    s.child.kill('SIGINT');
    expect((await s.exited).code).toBe(130);
  });

  it('npx weft serve: a SIGTERM to npx (npm\'s sh dies of it, node never sees it) drains like one to node: the stream in flight ends whole, new requests get 503', async () => {
    // A long grace: on a loaded machine the 120 tokens may take a while, and past the grace they would be aborted.
    const s = await serve(['--grace', '300000'], 'npx');
    const node = descendants(s.child.pid!).at(-1)!;
    orphans.push(node);
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'def f', max_tokens: 120, ignore_eos: true, stream: true }),
    });
    const reader = res.body!.getReader();
    let body = new TextDecoder().decode((await reader.read()).value);
    s.child.kill('SIGTERM');
    // The server notices its parent is gone within a second, then refuses new work while the stream runs on.
    let late: Response | null = null;
    for (let i = 0; i < 40 && late?.status !== 503; i++) {
      await new Promise((r) => setTimeout(r, 250));
      late = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 1 }) });
    }
    expect(late!.status).toBe(503);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      body += new TextDecoder().decode(value);
    }
    expect(body).toContain('"finish_reason":"length"');
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    // And then the node process exits on its own.
    const t0 = Date.now();
    while (alive(node) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 100));
    expect(alive(node)).toBe(false);
  });
});

/** Every process below `pid`, depth first (npx → sh → node). */
function descendants(pid: number): number[] {
  const kids = spawnSync('pgrep', ['-P', String(pid)]).stdout.toString().split('\n').filter(Boolean).map(Number);
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

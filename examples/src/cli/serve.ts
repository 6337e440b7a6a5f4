/**
 * `weft serve`: load the model on its ranks, serve the OpenAI-compatible API
 * (@weft/serve) on 127.0.0.1:8000 unless told otherwise. SIGINT / SIGTERM,
 * or the parent going away (how a SIGTERM to `npx` arrives: npm's `sh -c`
 * dies of it and never passes it on): new requests get 503, requests in
 * flight finish up to --grace, the rest are aborted, the ranks close, exit
 * 130 / 143 (129 for the parent). A second signal skips the wait.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '@weft/core';
import { int, MODEL_OPTIONS, parse, positiveInt, UsageError } from './args.js';
import { checkedEngineOptions, type Values } from './commands.js';
import { defaultModelDir, loadModel } from './load-model.js';
import { onParentGone } from './orphaned.js';
import { progressReporter } from './progress.js';
import { TRANSPORT_OPTIONS } from './transport.js';

const SERVE_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  'api-key': { type: 'string' },
  'served-model-name': { type: 'string' },
  'chat-template': { type: 'string' },
  'max-waiting-requests': { type: 'string' },
  grace: { type: 'string' },
  'allowed-origins': { type: 'string' },
  'allowed-methods': { type: 'string' },
  'allowed-headers': { type: 'string' },
  'allow-credentials': { type: 'boolean' },
} as const;

/** vLLM takes these lists as JSON (`'["https://a.example"]'`); a comma-separated list is accepted too. */
function list(v: unknown, name: string): string[] | undefined {
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  if (t.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(t);
    } catch (e) {
      throw new UsageError(`--${name}: not a JSON list (${(e as Error).message})`);
    }
    if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new UsageError(`--${name} must be a list of strings`);
    return parsed as string[];
  }
  return t.split(',').map((x) => x.trim()).filter(Boolean);
}

/**
 * @weft/serve is loaded at run time by a specifier tsup cannot see: examples/package.json does not list it yet,
 * so tsup would bundle it, and Fastify's CommonJS cannot run bundled into ESM. Once it is listed, import it statically.
 */
const SERVE_PACKAGE = '@weft/serve';
const loadServe = () => import(SERVE_PACKAGE) as Promise<typeof import('@weft/serve')>;

const EXIT_CODE: Record<string, number> = { SIGINT: 130, SIGTERM: 143, parent: 129 };

export async function serveCommand(argv: string[]): Promise<number> {
  const { values: v }: { values: Values } = parse(argv, { ...MODEL_OPTIONS, ...TRANSPORT_OPTIONS, ...SERVE_OPTIONS }, { modelPositional: true });
  const dir = typeof v.model === 'string' ? v.model : defaultModelDir();
  const host = typeof v.host === 'string' ? v.host : '127.0.0.1';
  const port = int(v.port, 'port', 8000)!;
  if (port < 0 || port > 65535) throw new UsageError(`--port must be in 0..65535, got ${port}`);
  for (const k of ['served-model-name', 'api-key'] as const) if (v[k] === '') throw new UsageError(`--${k} must not be empty`);
  const graceMs = int(v.grace, 'grace', 30_000)!;
  if (graceMs < 0) throw new UsageError(`--grace must be ≥ 0, got ${graceMs}`);
  let chatTemplate: string | undefined;
  if (typeof v['chat-template'] === 'string') {
    try {
      chatTemplate = readFileSync(v['chat-template'], 'utf8');
    } catch (e) {
      throw new ConfigError(`--chat-template ${v['chat-template']}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  const opts = checkedEngineOptions(v, dir);
  const { createServer } = await loadServe();
  const llm = await loadModel(dir, { ...opts, onProgress: progressReporter('loading weights') });
  let server;
  try {
    server = await createServer(llm, {
      modelDir: dir,
      servedModelName: typeof v['served-model-name'] === 'string' ? v['served-model-name'] : undefined,
      chatTemplate,
      apiKey: typeof v['api-key'] === 'string' ? v['api-key'] : process.env.WEFT_API_KEY || undefined,
      maxWaitingRequests: positiveInt(v['max-waiting-requests'], 'max-waiting-requests'),
      allowedOrigins: list(v['allowed-origins'], 'allowed-origins'),
      allowedMethods: list(v['allowed-methods'], 'allowed-methods'),
      allowedHeaders: list(v['allowed-headers'], 'allowed-headers'),
      allowCredentials: v['allow-credentials'] === true ? true : undefined,
    });
  } catch (e) {
    await llm.close();
    throw e instanceof ConfigError ? e : new ConfigError((e as Error).message);
  }
  let url: string;
  try {
    url = await server.listen({ host, port });
  } catch (e) {
    await llm.close();
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(code === 'EADDRINUSE' ? `--port ${port}: address ${host}:${port} is already in use` : `cannot listen on ${host}:${port}: ${(e as Error).message}`);
  }
  process.stderr.write(`weft serve: ${llm.backend} backend, ${llm.worldSize} rank(s), step: ${llm.stepPath}\n`);
  process.stderr.write(`weft serve: ${server.model} at ${url}/v1 (playground ${url}/, metrics ${url}/metrics); Ctrl-C stops\n`);

  const signal = await new Promise<NodeJS.Signals | 'parent'>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
    onParentGone(() => resolve('parent'));
  });
  onParentGone(null);
  const why = signal === 'parent' ? 'the parent process is gone' : signal;
  process.stderr.write(`weft serve: ${why}: new requests get 503; waiting up to ${graceMs} ms for ${server.activeRequests} in flight (signal again to stop now)\n`);
  const again = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  void again.then(() => server.shutdown({ graceMs: 0 }));
  const result = await server.shutdown({ graceMs });
  if (result.aborted) process.stderr.write(`weft serve: aborted ${result.aborted} request(s) still running\n`);
  await llm.close();
  return EXIT_CODE[signal]!;
}

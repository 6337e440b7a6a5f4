/**
 * `createServer(llm, options)`: the OpenAI-compatible HTTP server over an
 * engine, on Fastify. Binds 127.0.0.1 unless told otherwise; `shutdown()`
 * answers new requests with 503 while requests in flight finish, up to a
 * grace period, then aborts the rest and closes the socket.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ConfigError, loadTokenizerIfPresent, readTokenizerSpec } from '@weft/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { loadChatTemplate } from './chat-template.js';
import { ServeContext } from './context.js';
import { corsHook, DEFAULT_CORS, type CorsOptions } from './cors.js';
import type { EngineClient } from './engine-client.js';
import { ApiError, errorBody, toApiError } from './errors.js';
import { authHook, clientErrorHandler, drainHook, httpServerFactory, slowReaderHook } from './guards.js';
import { createMetrics } from './metrics.js';
import type { SamplingDefaults } from './params.js';
import { playgroundRoute } from './playground.js';
import { PromptText } from './prompt-text.js';
import { chatRoute } from './routes/chat.js';
import { completionsRoute } from './routes/completions.js';
import { infoRoutes } from './routes/info.js';
import { invocationsRoute } from './routes/invocations.js';
import { tokenBytesOf, utf8Bytes } from './token-bytes.js';

export interface ServeOptions extends Partial<CorsOptions> {
  /** The model directory: its chat template, generation defaults, tokenizer (for the tokenizer worker) and vocabulary size are read from it. */
  modelDir?: string;
  /** The name clients use (`model` in requests); default: the directory's name. */
  servedModelName?: string;
  /** A chat template (Jinja text) to use instead of the model's. */
  chatTemplate?: string;
  /** Require `Authorization: Bearer <apiKey>` on every route but /health and the playground page. */
  apiKey?: string;
  /** Past this many engine sequences (prompts × n) waiting, new requests get 429 (default 256). */
  maxWaitingRequests?: number;
  /** Largest request body in bytes; larger gets 413 (default 4 MiB). */
  bodyLimit?: number;
  /** Largest response one request may ask for, estimated from its max_tokens × sequences × logprobs (default 256 MiB). */
  maxResponseBytes?: number;
  /** Headers and body must arrive within this (default 30 s; 408 past it). */
  bodyTimeoutMs?: number;
  /** Idle keep-alive connections close after this (default 5 s, as vLLM). */
  keepAliveTimeoutMs?: number;
  /** A client that reads nothing of its response for this long is disconnected (default 30 s). */
  writeTimeoutMs?: number;
  /** A chat template render past this fails its request with a 400 (default 10 s). */
  templateTimeoutMs?: number;
  /** The chat template worker's heap (default 512 MiB); a render needing more fails its request with a 400. */
  templateMaxHeapMb?: number;
  /** Fastify's request log (default off). */
  logger?: boolean;
}

export interface WeftServer {
  readonly app: FastifyInstance;
  readonly model: string;
  /** Listen on host (default 127.0.0.1) and port (default 8000; 0 picks one); resolves with the base URL. */
  listen(opts?: { host?: string; port?: number }): Promise<string>;
  /** New requests get 503; wait up to `graceMs` (default 30 s) for requests in flight, then abort the rest and close. Leaves the engine open. A second call shortens the wait. */
  shutdown(opts?: { graceMs?: number }): Promise<{ aborted: number }>;
  /** Generation requests in flight. */
  readonly activeRequests: number;
}

/** A JSON file of the model directory, `{}` when absent; a file that is there but broken is an error naming it. */
function readJson(file: string): Record<string, unknown> {
  if (!existsSync(file)) return {};
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: cannot read JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/** vLLM's `--generation-config auto`: the model's generation_config.json supplies sampling defaults. */
function generationDefaults(dir: string | undefined): SamplingDefaults {
  if (!dir) return {};
  const g = readJson(join(dir, 'generation_config.json'));
  const num = (k: string) => (typeof g[k] === 'number' ? (g[k] as number) : undefined);
  // do_sample false means greedy in transformers.
  const temperature = g.do_sample === false ? 0 : num('temperature');
  return { temperature, topP: num('top_p'), topK: num('top_k'), minP: num('min_p'), repetitionPenalty: num('repetition_penalty') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function createServer(llm: EngineClient, options: ServeOptions = {}): Promise<WeftServer> {
  const dir = options.modelDir ? resolve(options.modelDir) : undefined;
  // An engine without a tokenizer for a directory that has a tokenizer.json: say what is wrong with which file
  // (a broken tokenizer.json, tokenizer_config.json or generation_config.json) instead of serving token ids only.
  if (dir && !llm.tokenizer) loadTokenizerIfPresent(dir);
  const model = options.servedModelName ?? (dir ? basename(dir) : 'weft');
  const template = loadChatTemplate(dir, options.chatTemplate === undefined ? undefined : { text: options.chatTemplate, source: '--chat-template' });
  const config = dir ? readJson(join(dir, 'config.json')) : {};
  const vocabSize = llm.tokenizer?.vocabSize ?? (typeof config.vocab_size === 'number' ? config.vocab_size : undefined);
  const metrics = createMetrics(llm, model);
  const writeTimeoutMs = options.writeTimeoutMs ?? 30_000;
  const spec = llm.tokenizer && dir && existsSync(join(dir, 'tokenizer.json')) ? readTokenizerSpec(dir) : null;
  const text = new PromptText(llm.tokenizer, spec, {
    templateTimeoutMs: options.templateTimeoutMs ?? 10_000,
    templateMaxHeapMb: options.templateMaxHeapMb ?? 512,
    offloadChars: 16 * 1024,
  });
  const fingerprint = `fp_weft_${createHash('sha256').update(`${model}\0${dir ?? ''}\0${llm.maxModelLen}`).digest('hex').slice(0, 10)}`;
  const ctx = new ServeContext(
    llm,
    model,
    dir ?? model,
    template,
    metrics,
    generationDefaults(dir),
    vocabSize,
    { maxWaitingRequests: options.maxWaitingRequests ?? 256, maxResponseBytes: options.maxResponseBytes ?? 256 * 2 ** 20, writeTimeoutMs },
    text,
    fingerprint,
    spec ? tokenBytesOf(spec.json) : utf8Bytes,
  );

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 4 * 1024 * 1024,
    forceCloseConnections: 'idle',
    // Draining answers 503 itself (drainHook) while still listening.
    return503OnClosing: false,
    serverFactory: httpServerFactory({ bodyTimeoutMs: options.bodyTimeoutMs ?? 30_000, keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 5_000, writeTimeoutMs }),
    clientErrorHandler,
  });

  app.setErrorHandler((err, _req, reply) => {
    const e = toApiError(err);
    if (e.status >= 500 && e.status !== 503) app.log.error(err);
    if (e.status === 429) void reply.header('retry-after', '1');
    void reply.status(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError(404, `no route ${req.method} ${req.url.split('?')[0]}`);
    void reply.status(404).send(errorBody(e));
  });
  // Order matters: CORS preflights are answered before anything else, then draining, then the key.
  corsHook(app, { ...DEFAULT_CORS, ...definedOnly(options) });
  drainHook(app, () => ctx.draining);
  if (options.apiKey) authHook(app, options.apiKey);
  slowReaderHook(app, writeTimeoutMs);

  invocationsRoute(app, { completions: completionsRoute(app, ctx), chat: chatRoute(app, ctx) });
  infoRoutes(app, ctx);
  playgroundRoute(app, ctx);
  await app.ready();
  let deadline = Infinity;
  let shuttingDown: Promise<{ aborted: number }> | null = null;

  return {
    app,
    model,
    get activeRequests() {
      return ctx.activeRequests;
    },
    async listen({ host = '127.0.0.1', port = 8000 } = {}) {
      await app.listen({ host, port });
      const addr = app.server.address();
      const p = typeof addr === 'object' && addr ? addr.port : port;
      return `http://${host.includes(':') ? `[${host}]` : host}:${p}`;
    },
    shutdown({ graceMs = 30_000 } = {}) {
      // A second call (a second Ctrl-C) only shortens the grace period of the first.
      deadline = Math.min(deadline, Date.now() + graceMs);
      shuttingDown ??= (async () => {
        // Still listening: new requests get 503 (drainHook) rather than a refused connection.
        ctx.draining = true;
        while (ctx.activeRequests > 0 && Date.now() < deadline) await sleep(20);
        const aborted = ctx.activeRequests;
        if (aborted) {
          ctx.abortAll('the server is shutting down');
          const until = Date.now() + 5000;
          while (ctx.activeRequests > 0 && Date.now() < until) await sleep(20);
        }
        const closed = app.close();
        // Keep-alive connections would otherwise hold close() open.
        app.server.closeAllConnections();
        await closed;
        await text.close();
        return { aborted };
      })();
      return shuttingDown;
    },
  };
}

function definedOnly(o: Partial<CorsOptions>): Partial<CorsOptions> {
  const out: Partial<CorsOptions> = {};
  if (o.allowedOrigins) out.allowedOrigins = o.allowedOrigins;
  if (o.allowedMethods) out.allowedMethods = o.allowedMethods;
  if (o.allowedHeaders) out.allowedHeaders = o.allowedHeaders;
  if (o.allowCredentials !== undefined) out.allowCredentials = o.allowCredentials;
  return out;
}

/**
 * `createServer(llm, options)`: the OpenAI-compatible HTTP server over an
 * engine, on Fastify. Binds 127.0.0.1 unless told otherwise; `shutdown()`
 * stops accepting, lets in-flight requests finish up to a grace period, then
 * aborts them.
 */
import { timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { loadChatTemplate } from './chat-template.js';
import { ServeContext } from './context.js';
import type { EngineClient } from './engine-client.js';
import { ApiError, errorBody, toApiError } from './errors.js';
import { createMetrics } from './metrics.js';
import type { SamplingDefaults } from './params.js';
import { playgroundRoute } from './playground.js';
import { chatRoute } from './routes/chat.js';
import { completionsRoute } from './routes/completions.js';
import { infoRoutes } from './routes/info.js';

export interface ServeOptions {
  /** The model directory: its chat template, generation defaults and vocabulary size are read from it. */
  modelDir?: string;
  /** The name clients use (`model` in requests); default: the directory's name. */
  servedModelName?: string;
  /** A chat template (Jinja text) to use instead of the model's. */
  chatTemplate?: string;
  /** Require `Authorization: Bearer <apiKey>` on /v1/*, /tokenize and /detokenize. */
  apiKey?: string;
  /** Past this many requests waiting for the engine, new ones get 429 (default 256). */
  maxWaitingRequests?: number;
  /** Largest request body in bytes; larger gets 413 (default 4 MiB). */
  bodyLimit?: number;
  /** Fastify's request log (default off). */
  logger?: boolean;
}

export interface WeftServer {
  readonly app: FastifyInstance;
  readonly model: string;
  /** Listen on host (default 127.0.0.1) and port (default 8000; 0 picks one); resolves with the base URL. */
  listen(opts?: { host?: string; port?: number }): Promise<string>;
  /** Stop accepting; wait up to `graceMs` (default 30 s) for requests in flight, then abort the rest. Leaves the engine open. A second call shortens the wait. */
  shutdown(opts?: { graceMs?: number }): Promise<{ aborted: number }>;
  /** Generation requests in flight. */
  readonly activeRequests: number;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
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

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function createServer(llm: EngineClient, options: ServeOptions = {}): Promise<WeftServer> {
  const dir = options.modelDir ? resolve(options.modelDir) : undefined;
  const model = options.servedModelName ?? (dir ? basename(dir) : 'weft');
  const template = loadChatTemplate(dir, options.chatTemplate === undefined ? undefined : { text: options.chatTemplate, source: '--chat-template' });
  const config = dir ? readJson(join(dir, 'config.json')) : {};
  const vocabSize = llm.tokenizer?.vocabSize ?? (typeof config.vocab_size === 'number' ? config.vocab_size : undefined);
  const metrics = createMetrics(llm, model);
  const ctx = new ServeContext(llm, model, dir ?? model, template, metrics, generationDefaults(dir), vocabSize, options.maxWaitingRequests ?? 256);

  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.bodyLimit ?? 4 * 1024 * 1024, forceCloseConnections: 'idle', return503OnClosing: true });

  app.setErrorHandler((err, _req, reply) => {
    const e = toApiError(err);
    if (e.status >= 500 && e.status !== 503) app.log.error(err);
    void reply.status(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError(404, `no route ${req.method} ${req.url.split('?')[0]}`);
    void reply.status(404).send(errorBody(e));
  });
  if (options.apiKey) {
    const key = options.apiKey;
    app.addHook('onRequest', async (req) => {
      const path = req.url.split('?')[0]!;
      if (!(path.startsWith('/v1/') || path === '/tokenize' || path === '/detokenize')) return;
      const auth = req.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !sameSecret(m[1]!.trim(), key)) {
        throw new ApiError(401, m ? 'Incorrect API key provided.' : 'Missing API key: send Authorization: Bearer <key>.', null, 'authentication_error', 'invalid_api_key');
      }
    });
  }

  completionsRoute(app, ctx);
  chatRoute(app, ctx);
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
        ctx.draining = true;
        const closed = app.close();
        while (ctx.activeRequests > 0 && Date.now() < deadline) await sleep(20);
        const aborted = ctx.activeRequests;
        if (aborted) {
          ctx.abortAll('the server is shutting down');
          const until = Date.now() + 5000;
          while (ctx.activeRequests > 0 && Date.now() < until) await sleep(20);
        }
        // Keep-alive connections that went idle after close() began would otherwise hold it open.
        app.server.closeAllConnections();
        await closed;
        return { aborted };
      })();
      return shuttingDown;
    },
  };
}

/** GET /v1/models, /health (and /ping), /version, /metrics; POST /tokenize, /detokenize (vLLM's extras). */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { createRequire } from 'node:module';
import { renderChat } from './chat.js';
import type { ServeContext } from '../context.js';
import { ApiError, badRequest } from '../errors.js';
import { tokenString } from '../logprobs.js';
import { asBody, optBool, tokenIdList } from '../params.js';
import { encodePrompt } from './shared.js';

/** @weft/serve's package version: its package.json is one folder above dist/ and two above src/routes/. */
function serveVersion(): string {
  const require = createRequire(import.meta.url);
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = require(rel) as { name?: string; version?: string };
      if (pkg.name === '@weft/serve' && pkg.version) return pkg.version;
    } catch {
      /* not this one */
    }
  }
  return 'unknown';
}
const SERVE_VERSION = serveVersion();

export function infoRoutes(app: FastifyInstance, ctx: ServeContext): void {
  const card = () => ({ id: ctx.model, object: 'model', created: ctx.created, owned_by: 'weft', root: ctx.root, parent: null, max_model_len: ctx.llm.maxModelLen });

  app.get('/v1/models', async () => ({ object: 'list', data: [card()] }));

  app.get<{ Params: { model: string } }>('/v1/models/:model', async (req) => {
    ctx.checkModel(req.params.model);
    return card();
  });

  // Open without the API key (auth.ts), as load balancers probe it; /ping is vLLM's (SageMaker's) name for it.
  const health = async (_req: unknown, reply: FastifyReply) => {
    const h = ctx.llm.health();
    if (!h.ok) throw new ApiError(503, `the engine is not running: ${h.error}`);
    if (ctx.draining) throw new ApiError(503, 'the server is shutting down');
    return reply.send({ status: 'ok' });
  };
  app.get('/health', { config: { public: true } }, health);
  app.route({ method: ['GET', 'POST'], url: '/ping', config: { public: true }, handler: health });

  // vLLM's GET /version, which clients probe to tell what serves them.
  app.get('/version', async () => ({ version: SERVE_VERSION }));

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });

  app.post('/tokenize', async (req) => {
    const b = asBody(req.body);
    ctx.checkModel(b.model);
    let ids: number[];
    if (b.messages !== undefined) ids = (await renderChat(ctx, b)).ids;
    else if (typeof b.prompt === 'string') ids = await encodePrompt(ctx, b.prompt, optBool(b, 'add_special_tokens') ?? true);
    else throw badRequest('tokenize needs prompt (a string) or messages', 'prompt');
    const withStrs = optBool(b, 'return_token_strs') ?? false;
    return { count: ids.length, max_model_len: ctx.llm.maxModelLen, tokens: ids, ...(withStrs ? { token_strs: ids.map((i) => tokenString(ctx.tokenizer, i)) } : {}) };
  });

  app.post('/detokenize', async (req) => {
    const b = asBody(req.body);
    ctx.checkModel(b.model);
    if (b.tokens === undefined) throw badRequest('detokenize needs tokens (a list of token ids)', 'tokens');
    const ids = tokenIdList(b.tokens, 'tokens', ctx.vocabSize);
    if (!ctx.tokenizer) throw badRequest('this model is served without a tokenizer (no tokenizer.json): there is no text to give', 'tokens');
    return { prompt: ctx.tokenizer.decode(ids) };
  });
}

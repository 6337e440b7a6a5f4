/** GET /v1/models, /health, /metrics; POST /tokenize, /detokenize (vLLM's extras). */
import type { FastifyInstance } from 'fastify';
import { renderChat } from './chat.js';
import type { ServeContext } from '../context.js';
import { ApiError, badRequest } from '../errors.js';
import { tokenString } from '../logprobs.js';
import { asBody, optBool, tokenIdList } from '../params.js';
import { encodePrompt } from './shared.js';

export function infoRoutes(app: FastifyInstance, ctx: ServeContext): void {
  const card = () => ({ id: ctx.model, object: 'model', created: ctx.created, owned_by: 'weft', root: ctx.root, parent: null, max_model_len: ctx.llm.maxModelLen });

  app.get('/v1/models', async () => ({ object: 'list', data: [card()] }));

  app.get<{ Params: { model: string } }>('/v1/models/:model', async (req) => {
    ctx.checkModel(req.params.model);
    return card();
  });

  // Open without the API key (auth.ts), as load balancers probe it.
  app.get('/health', { config: { public: true } }, async (_req, reply) => {
    const h = ctx.llm.health();
    if (!h.ok) throw new ApiError(503, `the engine is not running: ${h.error}`);
    if (ctx.draining) throw new ApiError(503, 'the server is shutting down');
    return reply.send({ status: 'ok' });
  });

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

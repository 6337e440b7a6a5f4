/**
 * POST /invocations: vLLM's (SageMaker's) one route for every request, dispatched on the body's shape:
 * `messages` to chat, `prompt` to completions. It answers exactly as the route it picks.
 */
import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import { badRequest } from '../errors.js';
import { asBody } from '../params.js';

export function invocationsRoute(app: FastifyInstance, handlers: { chat: RouteHandlerMethod; completions: RouteHandlerMethod }): void {
  app.post('/invocations', async function (req, reply) {
    const b = asBody(req.body);
    if (b.messages !== undefined && b.prompt !== undefined) throw badRequest('/invocations takes messages (chat) or prompt (completions), not both', 'messages');
    if (b.messages !== undefined) return handlers.chat.call(this, req, reply);
    if (b.prompt !== undefined) return handlers.completions.call(this, req, reply);
    throw badRequest('/invocations needs messages (a chat completion) or prompt (a completion)', 'messages');
  });
}

/**
 * CORS as vLLM has it (Starlette's CORSMiddleware behind `--allowed-origins`,
 * `--allowed-methods`, `--allowed-headers`, `--allow-credentials`; each list
 * defaults to `*`): a preflight is answered here, before authentication (a
 * browser sends no Authorization header on it), and an allowed origin's
 * requests get Access-Control-Allow-Origin.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError, errorBody } from './errors.js';

export interface CorsOptions {
  allowedOrigins: string[];
  allowedMethods: string[];
  allowedHeaders: string[];
  allowCredentials: boolean;
}

export const DEFAULT_CORS: CorsOptions = { allowedOrigins: ['*'], allowedMethods: ['*'], allowedHeaders: ['*'], allowCredentials: false };

const ALL_METHODS = 'DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT';
// Headers a browser may always send (the CORS "safelisted" ones).
const SAFELISTED = new Set(['accept', 'accept-language', 'content-language', 'content-type']);

export function corsHook(app: FastifyInstance, o: CorsOptions): void {
  const anyOrigin = o.allowedOrigins.includes('*');
  const anyMethod = o.allowedMethods.includes('*');
  const anyHeader = o.allowedHeaders.includes('*');
  const methods = new Set(o.allowedMethods.map((m) => m.toUpperCase()));
  const headers = new Set(o.allowedHeaders.map((h) => h.toLowerCase()));
  const originAllowed = (origin: string) => anyOrigin || o.allowedOrigins.includes(origin);
  // With credentials a browser refuses `*`: name the origin (and say the answer varies by it).
  const allowOrigin = (origin: string): Record<string, string> =>
    anyOrigin && !o.allowCredentials ? { 'access-control-allow-origin': '*' } : { 'access-control-allow-origin': origin, vary: 'Origin' };
  const credentials: Record<string, string> = o.allowCredentials ? { 'access-control-allow-credentials': 'true' } : {};

  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (typeof origin !== 'string') return;
    const wantMethod = req.headers['access-control-request-method'];
    if (req.method === 'OPTIONS' && typeof wantMethod === 'string') {
      const wantHeaders = String(req.headers['access-control-request-headers'] ?? '')
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean);
      const refused = !originAllowed(origin)
        ? 'origin'
        : !anyMethod && !methods.has(wantMethod.toUpperCase())
          ? 'method'
          : !anyHeader && wantHeaders.some((h) => !SAFELISTED.has(h) && !headers.has(h))
            ? 'headers'
            : null;
      if (refused) return reply.code(400).send(errorBody(new ApiError(400, `Disallowed CORS ${refused}`)));
      return reply
        .code(200)
        .headers({
          ...allowOrigin(origin),
          ...credentials,
          'access-control-allow-methods': anyMethod ? ALL_METHODS : [...methods].join(', '),
          // Any header allowed: echo what the browser asks for (nothing when it asks for none), as Starlette does.
          ...(anyHeader ? (wantHeaders.length ? { 'access-control-allow-headers': wantHeaders.join(', ') } : {}) : { 'access-control-allow-headers': o.allowedHeaders.join(', ') }),
          'access-control-max-age': '600',
        })
        .type('text/plain; charset=utf-8')
        .send('OK');
    }
    if (originAllowed(origin)) reply.headers({ ...allowOrigin(origin), ...credentials });
  });
}

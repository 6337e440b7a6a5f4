/**
 * What stands between a socket and a route: the HTTP server's timeouts
 * (a request's headers and body must arrive within `bodyTimeoutMs`; an idle
 * keep-alive connection closes after `keepAliveTimeoutMs`, vLLM's 5 s), a
 * response the client stops reading is dropped after `writeTimeoutMs`,
 * Node's own parse errors (400, 431, 408) answered in OpenAI's error shape,
 * 503 to everything while draining, and the API key on every route but
 * `/health` and the playground page, checked on the route the router
 * matched (so no spelling of a path, percent-encoded or not, skips it).
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, STATUS_CODES, type RequestListener, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ApiError, errorBody } from './errors.js';

export interface HttpTimeouts {
  bodyTimeoutMs: number;
  keepAliveTimeoutMs: number;
  writeTimeoutMs: number;
}

export function httpServerFactory(t: HttpTimeouts): (handler: RequestListener) => Server {
  return (handler) => {
    const server = createServer(
      {
        requestTimeout: t.bodyTimeoutMs,
        headersTimeout: t.bodyTimeoutMs,
        keepAliveTimeout: t.keepAliveTimeoutMs,
        // How often Node looks for requests past their timeout.
        connectionsCheckingInterval: Math.max(50, Math.min(1000, t.bodyTimeoutMs / 4)),
      },
      handler,
    );
    return server;
  };
}

/** Fastify's `clientErrorHandler`: what Node's parser refuses, in OpenAI's shape. */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const message =
    status === 431 ? 'the request headers are larger than this server accepts' : status === 408 ? 'the request did not arrive in time (headers and body)' : `the request is not valid HTTP (${err.code ?? err.message})`;
  const body = JSON.stringify(errorBody(new ApiError(status, message, null, 'invalid_request_error')));
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function authHook(app: FastifyInstance, key: string): void {
  app.addHook('onRequest', async (req) => {
    if ((req.routeOptions.config as { public?: boolean } | undefined)?.public) return;
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    if (!m || !sameSecret(m[1]!.trim(), key)) {
      throw new ApiError(401, m ? 'Incorrect API key provided.' : 'Missing API key: send Authorization: Bearer <key>.', null, 'authentication_error', 'invalid_api_key');
    }
  });
}

export function drainHook(app: FastifyInstance, draining: () => boolean): void {
  app.addHook('onRequest', async (_req, reply) => {
    if (!draining()) return;
    reply.header('connection', 'close');
    throw new ApiError(503, 'the server is shutting down');
  });
}

/** A whole (non-streamed) response the client takes nothing of for `ms` is dropped. */
export function slowReaderHook(app: FastifyInstance, ms: number): void {
  app.addHook('onSend', async (_req, reply, payload) => {
    const res = reply.raw;
    let last = Infinity;
    const timer = setInterval(() => {
      const pending = res.writableLength;
      if (pending > 0 && pending >= last) res.destroy(new Error(`the client read nothing for ${ms} ms`));
      last = pending;
    }, ms);
    timer.unref();
    const stop = () => clearInterval(timer);
    res.once('finish', stop);
    res.once('close', stop);
    return payload;
  });
}

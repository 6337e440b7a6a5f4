/**
 * Server-Sent Events on a raw response, with backpressure: `data: {json}`
 * frames, then `data: [DONE]`. A client that stops reading for longer than
 * the write timeout loses its connection (its request is then aborted like
 * any disconnect). The Connection header is Node's: a request that said
 * `Connection: close` gets its socket closed after the stream.
 */
import type { ServerResponse } from 'node:http';

export class SseWriter {
  constructor(
    private readonly res: ServerResponse,
    private readonly writeTimeoutMs: number,
  ) {}

  start(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Resolves once the frame is handed to the socket (or the socket is gone). */
  async send(data: unknown): Promise<void> {
    if (this.closed) return;
    if (!this.res.write(`data: ${JSON.stringify(data)}\n\n`)) await drained(this.res, this.writeTimeoutMs);
  }

  end(): void {
    if (this.closed) return;
    this.res.end('data: [DONE]\n\n');
  }
}

/** Wait for the socket to take more; past `ms` the reader is too slow: drop the connection. */
export function drained(res: ServerResponse, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    const timer = setTimeout(() => {
      res.destroy(new Error(`the client read nothing for ${ms} ms`));
      done();
    }, ms);
    res.on('drain', done);
    res.on('close', done);
  });
}

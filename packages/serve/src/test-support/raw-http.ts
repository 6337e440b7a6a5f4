/** Real sockets for the hostile-client tests: what a client that misbehaves at the HTTP level sends and sees. */
import { connect, type Socket } from 'node:net';

export interface RawConnection {
  socket: Socket;
  /** Everything received so far. */
  received(): string;
  /** Resolves when the server closes the connection (or it errors), with the time it took from connect. */
  closed: Promise<{ ms: number }>;
}

export function openRaw(baseUrl: string, send?: string): Promise<RawConnection> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = connect(Number(u.port), u.hostname);
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (buf += c));
    const closed = new Promise<{ ms: number }>((r) => {
      socket.on('close', () => r({ ms: performance.now() - t0 }));
      socket.on('error', () => {});
    });
    socket.once('connect', () => {
      if (send !== undefined) socket.write(send);
      resolve({ socket, received: () => buf, closed });
    });
    socket.once('error', reject);
  });
}

/** One HTTP/1.1 request as text. */
export function httpRequest(method: string, path: string, body: unknown, headers: Record<string, string> = {}): string {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const h = { host: 'localhost', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers };
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n${text}`;
}

/** Status and JSON body of a whole response read from a raw connection. */
export function parseResponse(raw: string): { status: number; headers: Record<string, string>; body: string } {
  const at = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, at).split('\r\n');
  const status = Number(head[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers, body: raw.slice(at + 4) };
}

export async function waitFor(cond: () => boolean, ms: number, what = 'a condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

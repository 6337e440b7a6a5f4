/**
 * Rendezvous in the torchrun manner: rank 0 listens on MASTER_ADDR:MASTER_PORT;
 * every other rank connects there (retrying until the master is up), proves
 * it holds the job token, and says where it listens. Once all have joined the
 * master sends everyone the address table; each rank then connects to the
 * ranks below it, so every pair ends up with one authenticated connection.
 * A rank that never joins fails the rendezvous with a message naming it.
 * Ports: rank 0 listens on MASTER_PORT; every other rank on the first free
 * port of `listenPorts` (default: any port the system gives).
 */
import { ConfigError, WeftError } from '@weft/core';
import { decodeJson, encodeJson } from '../codec.js';
import { Channel } from '../tcp/channels.js';
import { dialHandshake } from '../tcp/connection.js';
import { ListenError, TcpTransport, type TransportOptions } from '../tcp/transport.js';

export class RendezvousError extends WeftError {
  override name = 'RendezvousError';
}

export interface RendezvousOptions extends TransportOptions {
  masterAddr: string;
  masterPort: number;
  /** Address this rank listens on (rank 0: masterAddr). Default: the local address of its connection to the master, so loopback stays loopback. */
  bindHost?: string;
  /** Whole rendezvous; default timeoutMs. */
  rendezvousTimeoutMs?: number;
  /** Checked equal on every rank (e.g. the parallel layout): a rank started with other settings is refused. */
  fingerprint?: string;
  /** Ranks other than 0 listen on the first free port of this range (a firewall can then open just it); default: any free port. */
  listenPorts?: PortRange;
}

/** Ports first..last, both included. */
export interface PortRange {
  first: number;
  last: number;
}

type JoinInfo = { purpose: 'join'; rank: number; worldSize: number; fingerprint: string; frameMac: boolean };
type MeshInfo = { purpose: 'mesh'; rank: number; to: number };
type Address = { host: string; port: number };
type Table = { type: 'table'; addresses: Address[] } | { type: 'abort'; reason: string };

export async function rendezvous(opts: RendezvousOptions): Promise<TcpTransport> {
  const { rank, worldSize } = opts;
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new ConfigError(`rank ${rank} is outside the world of ${worldSize}`);
  const t = new TcpTransport(opts);
  const deadline = Date.now() + (opts.rendezvousTimeoutMs ?? t.timeoutMs);
  try {
    if (rank === 0) await master(t, opts, deadline);
    else await member(t, opts, deadline);
    return t;
  } catch (e) {
    t.abort(e as Error);
    throw e;
  }
}

const where = (o: RendezvousOptions) => `${o.masterAddr}:${o.masterPort}`;
const left = (deadline: number) => Math.max(1, deadline - Date.now());
const hs = (t: TcpTransport) => t.handshakeOptions;
const macs = (on: unknown) => (on ? 'MACed frames' : 'frames without a MAC');

/** Listen on the first port of `range` that is free. */
async function listenInRange(t: TcpTransport, host: string, range: PortRange | undefined): Promise<number> {
  if (!range) return t.listen(host, 0);
  for (let port = range.first; port <= range.last; port++) {
    try {
      return await t.listen(host, port);
    } catch (e) {
      if (!(e instanceof ListenError && e.code === 'EADDRINUSE')) throw e;
    }
  }
  throw new RendezvousError(`rank ${t.rank}: every port of ${range.first}-${range.last} on ${host} is in use (widen the rank port range)`);
}

async function master(t: TcpTransport, o: RendezvousOptions, deadline: number): Promise<void> {
  const ws = o.worldSize;
  const fp = o.fingerprint ?? '';
  const addresses: (Address | null)[] = new Array<Address | null>(ws).fill(null);
  const joined = new Set<number>();
  await t.listen(o.bindHost ?? o.masterAddr, o.masterPort);
  addresses[0] = { host: o.masterAddr, port: o.masterPort };
  let allJoined!: () => void;
  const done = new Promise<void>((r) => (allJoined = r));
  if (ws === 1) allJoined();
  t.admit = (raw) => {
    const info = raw as Partial<JoinInfo>;
    if (info.purpose !== 'join') return 'the master only takes joins';
    const r = info.rank;
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r >= ws) return `rank ${String(r)} is outside the world of ${ws}`;
    if (info.worldSize !== ws) return `rank ${r} says the world size is ${String(info.worldSize)}, the master says ${ws}`;
    if (info.fingerprint !== fp) return `rank ${r} was started with other settings (${String(info.fingerprint)}) than rank 0 (${fp})`;
    if (info.frameMac !== t.frameMac) return `rank ${r} sends ${macs(info.frameMac)}, rank 0 ${macs(t.frameMac)}`;
    if (joined.has(r)) return `rank ${r} has already joined`;
    joined.add(r);
    return {
      reply: { ok: true },
      accept: (conn) => {
        t.addPeer(r, conn);
        void t.recv(r, Channel.control, `rendezvous: address of rank ${r}`, left(deadline)).then(
          (a) => {
            const addr = decodeJson(a as Uint8Array) as Address;
            if (typeof addr?.host !== 'string' || !Number.isInteger(addr.port)) throw new WeftError(`rank ${r} sent a bad address`);
            addresses[r] = { host: addr.host, port: addr.port };
            if (addresses.every(Boolean)) allJoined();
          },
          () => {},
        );
      },
    };
  };
  const timedOut = await Promise.race([done.then(() => false), sleep(left(deadline)).then(() => true)]);
  if (timedOut) {
    const missing = addresses.flatMap((a, r) => (a ? [] : [r]));
    const reason =
      `rendezvous timed out after ${o.rendezvousTimeoutMs ?? t.timeoutMs} ms at ${where(o)}: ${ws - missing.length} of ${ws} ranks joined; ` +
      `missing: ${missing.length === 1 ? 'rank' : 'ranks'} ${missing.join(', ')}`;
    await Promise.all(t.connectedPeers.map((p) => t.send(p, Channel.control, encodeJson({ type: 'abort', reason } satisfies Table)).catch(() => {})));
    await t.close();
    throw new RendezvousError(reason);
  }
  t.admit = () => 'the group is complete';
  const table = encodeJson({ type: 'table', addresses: addresses as Address[] } satisfies Table);
  await Promise.all(t.connectedPeers.map((p) => t.send(p, Channel.control, table)));
}

async function member(t: TcpTransport, o: RendezvousOptions, deadline: number): Promise<void> {
  const { rank, worldSize: ws } = o;
  const info: JoinInfo = { purpose: 'join', rank, worldSize: ws, fingerprint: o.fingerprint ?? '', frameMac: t.frameMac };
  let lastError = '';
  let joined: Awaited<ReturnType<typeof dialHandshake>> | null = null;
  while (!joined) {
    try {
      joined = await dialHandshake(o.masterAddr, o.masterPort, info, { ...hs(t), timeoutMs: Math.min(left(deadline), 10_000) });
    } catch (e) {
      lastError = (e as Error).message;
      // Refusals and failed proofs are final; an absent master may still come up.
      if (/refused:|prove|protocol|not JSON/.test(lastError) || Date.now() >= deadline) {
        throw new RendezvousError(
          `rank ${rank}: could not join the master at ${where(o)}${Date.now() >= deadline ? ` within ${o.rendezvousTimeoutMs ?? t.timeoutMs} ms` : ''}: ${lastError}`,
        );
      }
      await sleep(Math.min(200, left(deadline)));
    }
  }
  const host = o.bindHost ?? joined.conn.socket.localAddress ?? '127.0.0.1';
  // Higher ranks dial this one once they have the table.
  t.admit = (raw) => {
    const m = raw as Partial<MeshInfo>;
    const j = m.rank;
    if (m.purpose !== 'mesh' || m.to !== rank) return 'not a mesh connection to this rank';
    if (typeof j !== 'number' || !Number.isInteger(j) || j <= rank || j >= ws) return `rank ${String(j)} should not dial rank ${rank}`;
    if (t.connectedPeers.includes(j)) return `rank ${j} is already connected`;
    return { reply: { ok: true }, accept: (conn) => t.addPeer(j, conn) };
  };
  const port = await listenInRange(t, host, o.listenPorts);
  t.addPeer(0, joined.conn);
  await t.send(0, Channel.control, encodeJson({ host, port } satisfies Address));
  // A little longer than the master waits, so that its verdict (which ranks are missing) arrives first.
  const msg = decodeJson((await t.recv(0, Channel.control, `rank ${rank}: rendezvous (waiting for every rank to join at ${where(o)})`, left(deadline) + 2000)) as Uint8Array) as Table;
  if (msg.type === 'abort') throw new RendezvousError(msg.reason);
  for (let j = 1; j < rank; j++) {
    const a = msg.addresses[j]!;
    const { conn } = await dialHandshake(a.host, a.port, { purpose: 'mesh', rank, to: j } satisfies MeshInfo, hs(t));
    t.addPeer(j, conn);
  }
  while (t.connectedPeers.length < ws - 1) {
    if (t.failed) throw t.failed;
    if (Date.now() >= deadline) {
      const missing = Array.from({ length: ws }, (_, r) => r).filter((r) => r !== rank && !t.connectedPeers.includes(r));
      throw new RendezvousError(`rank ${rank}: rendezvous timed out: ${missing.length === 1 ? 'rank' : 'ranks'} ${missing.join(', ')} never connected`);
    }
    await sleep(10);
  }
  t.admit = () => 'the group is complete';
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

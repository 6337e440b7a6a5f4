/**
 * bench:comm, decode over TCP against threads: `weft generate --tp 2` run as a
 * user runs it (the built CLI, a child process), once with ranks as worker
 * threads and once with `--transport tcp` (ranks as processes on loopback),
 * alternating. Decode speed is timed from the streamed token ids (the first
 * new token to the last), so model loading and start-up are left out; the
 * whole command's wall time is reported beside it. Nagle's algorithm left on
 * once made TCP ~9× slower here (issue 17): the ratio is the guard.
 */
import { spawn } from 'node:child_process';

export interface DecodeRun {
  transport: 'thread' | 'tcp';
  backend: string;
  /** New tokens seen on stdout. */
  tokens: number;
  /** Decode: tokens after the first, per second. */
  tokPerS: number;
  wallS: number;
}

export interface DecodeResult {
  model: string;
  tp: number;
  maxTokens: number;
  runs: DecodeRun[];
  /** Median decode tok/s per transport and their ratio (tcp ÷ thread; the target is ≥ 0.8). */
  threadTokPerS: number;
  tcpTokPerS: number;
  ratio: number;
}

export interface DecodeOptions {
  bin: string;
  model: string;
  tp?: number;
  maxTokens?: number;
  /** Runs per transport; default 3. */
  repeats?: number;
  backend?: string;
}

function once(o: Required<Omit<DecodeOptions, 'backend'>> & { backend?: string }, transport: 'thread' | 'tcp', promptLen: number): Promise<DecodeRun> {
  const args = [o.bin, 'generate', '--model', o.model, '--ids', Array.from({ length: promptLen }, (_, i) => i + 1).join(','), '--tp', String(o.tp), '--max-tokens', String(o.maxTokens), '--transport', transport];
  if (o.backend) args.push('--backend', o.backend);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    // When the count of ids on stdout grows past the prompt: the time of the first and of the latest new token.
    let first = 0;
    let last = 0;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const n = stdout.trim().split(/\s+/).length - promptLen;
      if (n >= 1 && !first) first = performance.now();
      if (n >= 1) last = performance.now();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      const wallS = (performance.now() - t0) / 1000;
      const ids = stdout.trim().split(/\s+/);
      if (code !== 0 || !ids.every((x) => /^\d+$/.test(x))) {
        reject(new Error(`weft generate --transport ${transport} exited ${code}${code === 0 ? ' but printed text, not token ids (use a model without tokenizer.json)' : ''}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
        return;
      }
      const tokens = ids.length - promptLen;
      const backend = /weft: (\w+) backend/.exec(stderr)?.[1] ?? 'unknown';
      resolve({ transport, backend, tokens, tokPerS: tokens > 1 ? (tokens - 1) / ((last - first) / 1000) : 0, wallS });
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function decodeOverTcp(opts: DecodeOptions): Promise<DecodeResult> {
  const o = { tp: 2, maxTokens: 64, repeats: 3, ...opts };
  const runs: DecodeRun[] = [];
  for (let i = 0; i < o.repeats; i++) {
    for (const t of ['thread', 'tcp'] as const) runs.push(await once(o, t, 3));
  }
  const threadTokPerS = median(runs.filter((r) => r.transport === 'thread').map((r) => r.tokPerS));
  const tcpTokPerS = median(runs.filter((r) => r.transport === 'tcp').map((r) => r.tokPerS));
  return { model: o.model, tp: o.tp, maxTokens: o.maxTokens, runs, threadTokPerS, tcpTokPerS, ratio: tcpTokPerS / threadTokPerS };
}

/**
 * `weft launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] -- <weft command>`:
 * torchrun for weft. Starts this node's N ranks as processes of the weft
 * command (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
 * WEFT_JOB_TOKEN and WEFT_TRANSPORT=tcp in their environment), supervises
 * them, and exits non-zero naming the first rank that died.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MASTER_PORT, Supervisor, describeExit } from '@weft/comm';
import { ConfigError } from '@weft/core';
import { int, parse, positiveInt, UsageError, vllmAlias } from './args.js';
import { defaultModelDir } from './load-model.js';
import { preflight } from './preflight.js';

export async function launchCommand(argv: string[]): Promise<number | void> {
  const sep = argv.indexOf('--');
  if (sep < 0 || sep === argv.length - 1) throw new UsageError('launch needs the command to run after --, e.g. weft launch --nproc-per-node 4 -- logits --model DIR --ids 1,2 --tp 2 --pp 2');
  const { values: v }: { values: Record<string, string | boolean | (string | boolean)[] | undefined> } = parse(argv.slice(0, sep), {
    'nproc-per-node': { type: 'string' },
    nnodes: { type: 'string' },
    'node-rank': { type: 'string' },
    'master-addr': { type: 'string' },
    'master-port': { type: 'string' },
    grace: { type: 'string' },
  });
  const command = argv.slice(sep + 1);
  const nproc = positiveInt(v['nproc-per-node'], 'nproc-per-node');
  if (nproc === undefined) throw new UsageError('launch needs --nproc-per-node N');
  const nnodes = positiveInt(v.nnodes, 'nnodes', 1)!;
  preflightCommand(command, { nproc, nnodes });
  const nodeRank = int(v['node-rank'], 'node-rank', 0)!;
  if (nodeRank < 0 || nodeRank >= nnodes) throw new UsageError(`--node-rank ${nodeRank} is outside --nnodes ${nnodes}`);
  const masterAddr = (v['master-addr'] as string | undefined) ?? '127.0.0.1';
  if (nnodes > 1 && v['master-addr'] === undefined) throw new UsageError('several nodes need --master-addr (the address of node 0, reachable from every node)');
  const masterPort = positiveInt(v['master-port'], 'master-port', DEFAULT_MASTER_PORT)!;
  let token = process.env.WEFT_JOB_TOKEN;
  if (!token) {
    if (nnodes > 1) throw new ConfigError('several nodes: export the same WEFT_JOB_TOKEN (16+ characters) on every node first, e.g. export WEFT_JOB_TOKEN=$(openssl rand -hex 16)');
    token = randomBytes(24).toString('hex');
  }
  const worldSize = nproc * nnodes;
  // The weft entry this launcher was started from (bin/weft.js), so the ranks run the same build.
  const bin = process.argv[1] ?? fileURLToPath(new URL('../bin/weft.js', import.meta.url));
  const sup = new Supervisor({
    command: process.execPath,
    args: [bin, ...command],
    graceMs: positiveInt(v.grace, 'grace', 10_000),
    log: (l) => process.stderr.write(`weft launch: ${l}\n`),
    ranks: Array.from({ length: nproc }, (_, i) => {
      const rank = nodeRank * nproc + i;
      return {
        rank,
        env: {
          RANK: String(rank),
          LOCAL_RANK: String(i),
          WORLD_SIZE: String(worldSize),
          LOCAL_WORLD_SIZE: String(nproc),
          MASTER_ADDR: masterAddr,
          MASTER_PORT: String(masterPort),
          WEFT_JOB_TOKEN: token,
          WEFT_TRANSPORT: 'tcp',
        },
      };
    }),
  });
  // A signal stops every rank; the launcher then exits 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process killed by it.
  let stoppedBy: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    stoppedBy = sig;
    process.stderr.write(`weft launch: ${sig}: stopping every rank\n`);
    void sup.stop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  void sup.firstFailure.then((e) => {
    if (!stoppedBy) process.stderr.write(`weft launch: ${describeExit(e)}; stopping the others\n`);
  });
  const exits = await sup.wait();
  if (stoppedBy) return stoppedBy === 'SIGINT' ? 130 : 143;
  const first = sup.failure;
  if (first) {
    const others = exits.filter((e) => e.rank !== first.rank && (e.code !== 0 || e.signal)).map((e) => describeExit(e));
    throw new LaunchFailedError(`${describeExit(first)}${others.length ? `; then ${others.join(', ')}` : ''}`);
  }
}

/** The commands whose ranks a launcher starts. */
const LAUNCHABLE = ['generate', 'logits', 'serve'];

/**
 * The launched weft command, its model and layout, checked here before any rank starts: a command that cannot
 * work fails once, in one line, instead of as every rank failing during its entry (each printing the same
 * error, then the launcher's summary of them).
 */
function preflightCommand(command: string[], nodes: { nproc: number; nnodes: number }): void {
  const [sub, ...raw] = command;
  if (!sub || !LAUNCHABLE.includes(sub)) throw new UsageError(`launch starts the ranks of ${LAUNCHABLE.join(', ')}; got '${sub ?? ''}'`);
  const args = raw.map(vllmAlias);
  const value = (name: string) => {
    for (let i = 0; i < args.length; i++) {
      if (args[i] === `--${name}`) return args[i + 1];
      if (args[i]!.startsWith(`--${name}=`)) return args[i]!.slice(name.length + 3);
    }
    return undefined;
  };
  const layout = { tp: positiveInt(value('tp'), 'tp'), pp: positiveInt(value('pp'), 'pp'), dp: positiveInt(value('dp'), 'dp'), ep: args.includes('--enable-expert-parallel') };
  // serve's model may be a bare directory (vLLM's `serve MODEL`); generate and serve default to the embedded model.
  const model = value('model') ?? (sub === 'serve' ? args.find((a) => !a.startsWith('-') && existsSync(join(a, 'config.json'))) : undefined) ?? (sub === 'logits' ? undefined : defaultModelDir());
  if (model !== undefined) preflight(model, layout, { dtype: value('dtype'), quantization: value('quantization') });
  const { tp = 1, pp = 1, dp = 1 } = layout;
  const ranks = nodes.nproc * nodes.nnodes;
  if (tp * pp * dp !== ranks) {
    const started = nodes.nnodes > 1 ? `--nproc-per-node ${nodes.nproc} × --nnodes ${nodes.nnodes} = ${ranks} ranks` : `--nproc-per-node ${nodes.nproc} starts ${ranks} rank(s)`;
    throw new UsageError(`${started}, but tp ${tp} × pp ${pp} × dp ${dp} needs ${tp * pp * dp}`);
  }
}

export class LaunchFailedError extends ConfigError {
  override name = 'LaunchFailedError';
}

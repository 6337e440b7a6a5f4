/**
 * `weft launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] -- <weft command>`:
 * torchrun for weft. Starts this node's N ranks as processes of the weft
 * command (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
 * WEFT_JOB_TOKEN and WEFT_TRANSPORT=tcp in their environment), supervises
 * them, and exits non-zero naming the first rank that died.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MASTER_PORT, Supervisor, describeExit } from '@weft/comm';
import { ConfigError } from '@weft/core';
import { int, parse, positiveInt, UsageError } from './args.js';

export const LAUNCH_HELP = `  weft launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] [--grace MS] -- <command> [options]
                starts N ranks of a weft command as processes on this node (torchrun-style); one node: a fresh job
                token is made; several nodes: export the same WEFT_JOB_TOKEN on every node first`;

export async function launchCommand(argv: string[]): Promise<void> {
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
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`weft launch: ${sig}: stopping every rank\n`);
    void sup.stop().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  void sup.firstFailure.then((e) => process.stderr.write(`weft launch: ${describeExit(e)}; stopping the others\n`));
  const exits = await sup.wait();
  const first = sup.failure;
  if (first) {
    const others = exits.filter((e) => e.rank !== first.rank && (e.code !== 0 || e.signal)).map((e) => describeExit(e));
    throw new LaunchFailedError(`${describeExit(first)}${others.length ? `; then ${others.join(', ')}` : ''}`);
  }
}

export class LaunchFailedError extends ConfigError {
  override name = 'LaunchFailedError';
}

/**
 * Where a rank stands, read once from the launcher's environment at start-up:
 * torchrun / `weft launch` (RANK, WORLD_SIZE, LOCAL_RANK), Open MPI
 * (OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK) or Slurm (SLURM_PROCID,
 * SLURM_NTASKS, SLURM_LOCALID). The master is MASTER_ADDR:MASTER_PORT
 * (Slurm: MASTER_ADDR must be given); the job token is WEFT_JOB_TOKEN; the
 * ports ranks other than 0 listen on, WEFT_RANK_PORTS (default: any).
 */
import { ConfigError } from '@weft/core';
import type { PortRange } from './rendezvous.js';

export type LaunchStyle = 'torchrun' | 'openmpi' | 'slurm';

export interface LaunchEnv {
  style: LaunchStyle;
  rank: number;
  worldSize: number;
  localRank: number;
  /** Ranks of the job on this host (LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE, SLURM_NTASKS_PER_NODE), when the launcher says. */
  localWorldSize?: number;
  masterAddr: string;
  masterPort: number;
  token: string;
  /** WEFT_BIND_ADDR: the address this rank listens on (default: loopback, or the route to the master). */
  bindAddr?: string;
  /** WEFT_RANK_PORTS (`29600-29615` or `29600`): ranks other than 0 listen on the first free port of it. */
  listenPorts?: PortRange;
}

export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

/** `first-last` or one port; `what` names the variable or flag in the error. */
export function parsePortRange(raw: string, what: string): PortRange {
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(raw);
  const first = Number(m?.[1]);
  const last = m?.[2] === undefined ? first : Number(m[2]);
  if (!m || first < 1 || last > 65535 || first > last) {
    throw new ConfigError(`${what}=${raw} is not a port or a port range first-last within 1-65535 (e.g. 29600-29631)`);
  }
  return { first, last };
}

function int(env: Env, name: string, min: number): number {
  const raw = env[name];
  const n = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(n) || n < min) throw new ConfigError(`${name}=${String(raw)} is not a whole number ≥ ${min}`);
  return n;
}

/** The launcher's view, or null when no launcher variables are set. */
export function readLaunchEnv(env: Env = process.env): LaunchEnv | null {
  let style: LaunchStyle;
  let keys: [string, string, string, string];
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    style = 'torchrun';
    keys = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE'];
  } else if (env.OMPI_COMM_WORLD_RANK !== undefined) {
    style = 'openmpi';
    keys = ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_LOCAL_SIZE'];
  } else if (env.SLURM_PROCID !== undefined) {
    style = 'slurm';
    keys = ['SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID', 'SLURM_NTASKS_PER_NODE'];
  } else return null;
  const rank = int(env, keys[0], 0);
  const worldSize = int(env, keys[1], 1);
  const localRank = env[keys[2]] === undefined ? rank : int(env, keys[2], 0);
  // Advisory (it only sizes thread pools): a value that is not a plain count, like Slurm's "2(x3)", is ignored.
  const localWorldSize = /^[1-9]\d*$/.test(env[keys[3]] ?? '') ? Number(env[keys[3]]) : undefined;
  if (rank >= worldSize) throw new ConfigError(`${keys[0]}=${rank} is outside ${keys[1]}=${worldSize}`);
  if (style === 'slurm' && !env.MASTER_ADDR) {
    throw new ConfigError('under Slurm set MASTER_ADDR to the first node of the job, e.g. export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)');
  }
  const masterAddr = env.MASTER_ADDR || '127.0.0.1';
  const masterPort = env.MASTER_PORT === undefined ? DEFAULT_MASTER_PORT : int(env, 'MASTER_PORT', 1);
  const token = env.WEFT_JOB_TOKEN ?? '';
  if (worldSize > 1 && token.length < 16) {
    throw new ConfigError(
      `${style} rank ${rank}: WEFT_JOB_TOKEN must be set to the same secret (16+ characters) on every rank, ` +
        `e.g. export WEFT_JOB_TOKEN=$(openssl rand -hex 16)${style === 'openmpi' ? ' and mpirun -x WEFT_JOB_TOKEN' : ''}; \`weft launch\` makes one for you`,
    );
  }
  const listenPorts = env.WEFT_RANK_PORTS ? parsePortRange(env.WEFT_RANK_PORTS, 'WEFT_RANK_PORTS') : undefined;
  return { style, rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, token, bindAddr: env.WEFT_BIND_ADDR || undefined, listenPorts };
}

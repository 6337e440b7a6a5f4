/**
 * What the host executor runs for each op kind: `kind → HostOpImpl`. An
 * implementation is called once per recorded op when the executor is built
 * (read its weights through `up`, check its views) and returns the closure a
 * step calls (context.ts). A new op kind: a file with its `HostOpImpl`, and
 * one line here; `HOST_CAPS` (what `unsupportedOps` checks) follows the table.
 */
import type { ExecutorCaps } from '../executor.js';
import type { PlanOpKind } from '../ops.js';
import { hostAttention } from './attention.js';
import { hostAllReduce, hostGatherColumns } from './collectives.js';
import type { HostOpImpl } from './context.js';
import { hostAdd, hostGatedAct, hostGatherSampled, hostRotary, hostSoftcap } from './elementwise.js';
import { hostEmbed } from './embed.js';
import { hostLinear } from './linear.js';
import { hostCopyHeads, hostHeadMatmul, hostMoe, hostRoundInput } from './moe-mla.js';
import { hostRmsNorm } from './rms-norm.js';

export type HostOpTable = { readonly [K in PlanOpKind]?: HostOpImpl<K> };

export const HOST_OPS: HostOpTable = {
  embed: hostEmbed,
  rmsNorm: hostRmsNorm,
  linear: hostLinear,
  rotary: hostRotary,
  attention: hostAttention,
  gatedAct: hostGatedAct,
  add: hostAdd,
  softcap: hostSoftcap,
  gatherSampled: hostGatherSampled,
  allReduce: hostAllReduce,
  gatherColumns: hostGatherColumns,
  moe: hostMoe,
  headMatmul: hostHeadMatmul,
  copyHeads: hostCopyHeads,
  roundInput: hostRoundInput,
};

export const HOST_CAPS: ExecutorCaps = { name: 'host', ops: new Set(Object.keys(HOST_OPS) as PlanOpKind[]) };

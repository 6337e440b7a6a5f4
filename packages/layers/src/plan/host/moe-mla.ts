/** Adapters of the MoE and MLA host implementations (moe.ts, mla.ts) to the op table's shape. */
import type { HostOpImpl } from './context.js';
import { copyHeadsHost, headMatmulHost, headMatricesHost, roundInputHost } from './mla.js';
import { moeHost } from './moe.js';

export const hostMoe: HostOpImpl<'moe'> = (op, up) => {
  const bias = op.correctionBias ? up.vector(op.correctionBias) : null;
  const experts = op.experts.map((e) => ({ id: e.id, gateUp: up.matrix(e.gateUp), down: up.matrix(e.down) }));
  return (s) => moeHost(op, s.tokens, (a) => s.buf(a), bias, experts, up.kernels);
};

export const hostHeadMatmul: HostOpImpl<'headMatmul'> = (op, up) => {
  const { heads, k, n, name } = op.weight;
  const mats = headMatricesHost(op.weight.data(), heads, k, n, name);
  return (s) => headMatmulHost(op, s.rowsOf(op.x.act), (a) => s.buf(a), mats, up.kernels);
};

export const hostCopyHeads: HostOpImpl<'copyHeads'> = (op) => (s) => copyHeadsHost(op, s.rowsOf(op.x.act), (a) => s.buf(a));

export const hostRoundInput: HostOpImpl<'roundInput'> = (op) => (s) => roundInputHost(op, s.rowsOf(op.x.act), (a) => s.buf(a));

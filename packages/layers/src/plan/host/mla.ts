/**
 * The host executor's MLA ops (plan/ops.ts): `headMatmul` (the absorbed
 * kv_b_proj per head, an fp32 GEMM per head on @weft/cpu-kernels), `copyHeads` (strided column copies) and `roundInput`
 * (the latent as kv_b_proj's a8 kernel would see it). Activations are the
 * executor's buffers, `[rows, act.width]` row-major; views address columns.
 */
import { kernelInfo, roundTripActivationsQ8_0, type HostMatrix, type PlanKernels } from '@weft/cpu-kernels';
import { WeftError } from '@weft/core';
import type { LinearWeight } from '../../linear/linear-weight.js';
import type { ActView, CopyHeadsOp, HeadMatmulOp, PlanAct, RoundInputOp } from '../ops.js';

/** The executor's buffer of an activation, `[rows, act.width]`. */
export type HostBuffers = (act: PlanAct) => Float32Array;

function checkSpan(what: string, v: ActView, heads: number, stride: number, width: number): void {
  if ((heads - 1) * stride + width > v.width) {
    throw new WeftError(`${what}: ${heads} heads of ${width} columns every ${stride} do not fit the view of ${v.act.name} (${v.width} columns)`);
  }
}

/**
 * Per head, `W[h]` of `data` (`[heads, k, n]`, as `HeadMatrices.data()` gives it) as the kernels' fp32 `[n, k]`
 * matrix: transposed once, at upload (their `[n, k]` GEMM is the fast one).
 */
export function headMatricesHost(data: Float32Array, heads: number, k: number, n: number, name: string): HostMatrix[] {
  if (data.length !== heads * k * n) throw new WeftError(`headMatmul ${name}: ${data.length} values, expected [${heads}, ${k}, ${n}]`);
  return Array.from({ length: heads }, (_, h) => {
    const t = new Float32Array(n * k);
    const wh = data.subarray(h * k * n, (h + 1) * k * n);
    for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) t[j * k + i] = wh[i * n + j]!;
    return { format: 'fp32' as const, n, k, layout: 'nk' as const, data: t };
  });
}

/** The op: one fp32 GEMM per head on the kernels, reading and writing the heads' columns in place. */
export function headMatmulHost(op: HeadMatmulOp, rows: number, buf: HostBuffers, mats: readonly HostMatrix[], kernels: Pick<PlanKernels, 'linear'>): void {
  const { heads, k, n } = op.weight;
  checkSpan(`headMatmul ${op.weight.name} x`, op.x, heads, op.xStride, k);
  checkSpan(`headMatmul ${op.weight.name} out`, op.out, heads, op.outStride, n);
  if (mats.length !== heads) throw new WeftError(`headMatmul ${op.weight.name}: ${mats.length} matrices for ${heads} heads`);
  if (rows === 0) return;
  const x = buf(op.x.act);
  const out = buf(op.out.act);
  for (let h = 0; h < heads; h++) {
    kernels.linear(
      { data: x, offset: op.x.col + h * op.xStride, stride: op.x.act.width },
      rows,
      mats[h]!,
      { data: out, offset: op.out.col + h * op.outStride, stride: op.out.act.width },
      false,
      null,
    );
  }
}

export function copyHeadsHost(op: CopyHeadsOp, rows: number, buf: HostBuffers): void {
  checkSpan('copyHeads x', op.x, op.heads, op.xStride, op.width);
  checkSpan('copyHeads out', op.out, op.heads, op.outStride, op.width);
  const x = buf(op.x.act);
  const out = buf(op.out.act);
  const ldx = op.x.act.width;
  const ldo = op.out.act.width;
  for (let t = 0; t < rows; t++) {
    for (let h = 0; h < op.heads; h++) {
      const s = t * ldx + op.x.col + h * op.xStride;
      out.set(x.subarray(s, s + op.width), t * ldo + op.out.col + h * op.outStride);
    }
  }
}

/** Whether the host's linear kernel for `weight`'s format quantizes its input (@weft/cpu-kernels: Q8_0 and Q4_0 are a8). */
export function hostRoundsInput(weight: LinearWeight): boolean {
  const format = weight.packed?.format;
  return (format === 'q8_0' || format === 'q4_0') && kernelInfo().semantics[format] === 'a8';
}

export function roundInputHost(op: RoundInputOp, rows: number, buf: HostBuffers): void {
  if (!hostRoundsInput(op.weight) || rows === 0) return;
  const { col, width, act } = op.x;
  const x = buf(act);
  const rowsOf = new Float32Array(rows * width);
  for (let t = 0; t < rows; t++) rowsOf.set(x.subarray(t * act.width + col, t * act.width + col + width), t * width);
  const rounded = roundTripActivationsQ8_0(rowsOf, width);
  for (let t = 0; t < rows; t++) x.set(rounded.subarray(t * width, (t + 1) * width), t * act.width + col);
}

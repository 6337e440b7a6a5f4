/**
 * Kernel tunings bench gpu-step compares with the executor's defaults (`--variants`): per weight format and
 * the device's subgroup size, a tuning, or null where the variant does not apply.
 */
import { gemvShape, gemvShapeBefore, type KernelTuning } from '@weft/layers';

type Variant = (format: string, subgroupSize: number | null) => KernelTuning | null;

export const STEP_VARIANTS: Record<string, Variant> = {
  /** Decode attention: the scalar kernel (one thread scores the row's own key; 4 keys in flight in P·V). */
  'attn-scalar': () => ({ decodeAttention: 'scalar' }),
  /** Decode attention with vec4 values and the subgroup tile max. */
  'attn-vec4': (_f, sg) => (sg ? { decodeAttention: 'vec4' } : null),
  /** The same without subgroups. */
  'attn-vec4-nosg': () => ({ decodeAttention: 'vec4-nosg' }),
  /** Every GEMV from 5 rows (the chunks of 17–64 rows too) one shape, L lanes × R weight rows a thread; up to 4 rows the defaults. */
  ...Object.fromEntries(
    ['64x2', '64x4', '64x8', '32x4', '128x4', '16x4', '16x8'].map((name) => {
      const [L, R] = name.split('x').map(Number) as [number, number];
      const v: Variant = () => ({ gemv: (m, gateUp, w) => (m <= 4 ? gemvShape(m, gateUp, w) : { L, R: gateUp ? Math.max(2, R) : R }) });
      return [`gemv-${name}`, v];
    }),
  ),
  /** Every linear with the GEMV shapes before the sweep of 2026-12-03 23:20 (the before of the before/after). */
  'gemv-before': () => ({ gemv: gemvShapeBefore }),
  /** Q8_0 / Q4_0 linears decoded with int → float conversions, as before the exponent trick (same floats). */
  convert: (format) => (format === 'q8_0' || format === 'q4_0' ? { weightDecode: 'convert' } : null),
  /** The step's kernels in one command buffer (the executor's default submits its first 8, then 40, on their own). */
  nosplit: () => ({ submitSplit: [] }),
  'split-4-16': () => ({ submitSplit: [4, 16] }),
  /** The host awaits each read-back on dawn-node's polling alone (no GpuWait sleep): the long steps' A/B. */
  poll: () => ({ hostWait: 'poll' }),
  /** Steps above 8 (4) rows in chunks of 8 (4): fewer accumulators a thread, each weight tile read per chunk (from L2 after the first). */
  chunk8: () => ({ gemvChunk: 8 }),
  chunk4: () => ({ gemvChunk: 4 }),
  /** Every GEMV from 5 rows: 32 lanes, 4 weight rows a thread, subgroupAdd sums (the sweep's best for Q4_0 gate|up at 16 rows). */
  'gemv-sg32x4': (format, sg) =>
    sg === 32 ? { gemv: (m, gateUp) => (m <= 4 ? { L: 64, R: (format.startsWith('q') ? 4 : 2) * (gateUp ? 2 : 1) } : { L: 32, R: 4, sg: true }) } : null,
};

/**
 * The host executor's upload: each weight read once and shared by every op
 * that names it. Packed bf16 / Q8_0 / Q4_0 blocks are the kernels' input as
 * they are (no copy). fp32 is held `[n, k]`: a LinearWeight's `[k, n]` tensor
 * is transposed once here, because @weft/cpu-kernels' `[n, k]` GEMM is
 * 1.7-3× faster than its `[k, n]` one (docs/benchmarks/cpu-plan.md); a
 * LinearWeight held row-major (`holdRowMajor`, host-plan ranks) is used as it is.
 */
import type { HostMatrix, PlanKernels } from '@weft/cpu-kernels';
import type { EmbeddingWeight } from '../../embedding-weight.js';
import type { LinearWeight } from '../../linear/linear-weight.js';
import type { Parameter } from '../../parameter.js';
import { matrixStorage, vectorData } from '../weights.js';
import type { HostUpload } from './context.js';

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B)
    for (let c0 = 0; c0 < cols; c0 += B)
      for (let r = r0; r < Math.min(rows, r0 + B); r++)
        for (let c = c0; c < Math.min(cols, c0 + B); c++) out[c * rows + r] = src[r * cols + c]!;
  return out;
}

/** The host form of a plan weight `[n, k]`; `copied`: its data is a transposed copy, not the parameter's. */
export function hostMatrix(w: LinearWeight | EmbeddingWeight): HostMatrix & { copied?: boolean } {
  const s = matrixStorage(w);
  if (s.format !== 'fp32') {
    const p = s.packed;
    if (p.format === 'bf16') return { format: 'bf16', n: s.n, k: s.k, data: p.data };
    return p.format === 'q8_0' ? { format: 'q8_0', n: s.n, k: s.k, qs: p.qs, d: p.d } : { format: 'q4_0', n: s.n, k: s.k, qs: p.qs, d: p.d, layout: p.layout };
  }
  const data = s.data();
  return { format: 'fp32', n: s.n, k: s.k, layout: 'nk', data: s.transposed ? transpose(data, s.k, s.n) : data, copied: s.transposed };
}

export class HostWeights implements HostUpload {
  private readonly matrices = new Map<LinearWeight | EmbeddingWeight, HostMatrix>();
  private readonly vectors = new Map<Parameter, Float32Array>();

  constructor(readonly kernels: PlanKernels) {}

  matrix(w: LinearWeight | EmbeddingWeight): HostMatrix {
    let m = this.matrices.get(w);
    if (!m) this.matrices.set(w, (m = hostMatrix(w)));
    return m;
  }

  vector(p: Parameter): Float32Array {
    let v = this.vectors.get(p);
    if (!v) this.vectors.set(p, (v = Float32Array.from(vectorData(p))));
    return v;
  }

  /** Bytes the upload holds outside the parameters (transposed fp32 copies, norm vectors; packed blocks and row-major fp32 are the parameters'). */
  get copiedBytes(): number {
    let b = 0;
    for (const m of this.matrices.values()) if (m.format === 'fp32' && (m as { copied?: boolean }).copied) b += m.data.byteLength;
    for (const v of this.vectors.values()) b += v.byteLength;
    return b;
  }

  clear(): void {
    this.matrices.clear();
    this.vectors.clear();
  }
}

/**
 * GEMV shapes chosen per linear by bench gpu-kernels' sweep (`--choice-out`), and the kernel tuning that runs a
 * whole decode step with them (bench gpu-step `--gemv-table`): an entry names a weight (format, output columns
 * of a half for gate|up, K) and a row class (1: steps of ≤ 4 rows, 16: the chunks of larger steps).
 */
import { gemvShape, type GemvShape, type GemvWeight, type KernelTuning } from '@weft/layers';

export interface GemvChoice {
  format: string;
  linear: string;
  cols: number;
  k: number;
  gateUp: boolean;
  rows: number;
  shape: string;
  us: number;
  default_us: number;
}

/** One point of the sweep: a linear (n outputs, K; gate|up: n = both halves) at `rows` rows and one shape. */
export interface SweepRow {
  format: string;
  linear: string;
  n: number;
  k: number;
  gateUp: boolean;
  rows: number;
  shape: string;
  us: number;
}

/** The fastest shape per (format, linear, rows) where it beats `default` by more than `margin`. */
export function gemvChoice(rows: SweepRow[], margin: number): GemvChoice[] {
  const out: GemvChoice[] = [];
  for (const key of new Set(rows.map((r) => `${r.format}|${r.linear}|${r.rows}`))) {
    // Shapes only: `convert` (the old decoders) and `rows4` (the untiled GEMV) are not.
    const rs = rows.filter((r) => `${r.format}|${r.linear}|${r.rows}` === key && r.us > 0 && (r.shape === 'default' || /^\d+x\d+/.test(r.shape)));
    const def = rs.find((r) => r.shape === 'default');
    if (!def) continue;
    const best = rs.reduce((a, b) => (b.us < a.us ? b : a));
    if (best.shape === 'default' || best.us > def.us * (1 - margin)) continue;
    out.push({ format: def.format, linear: def.linear, cols: def.gateUp ? def.n / 2 : def.n, k: def.k, gateUp: def.gateUp, rows: def.rows, shape: best.shape, us: best.us, default_us: def.us });
  }
  return out;
}

/** `LxR[uU][sg]` → the GEMV shape (R: weight rows a thread, at least 2 and even for gate|up). */
export function parseGemvShape(shape: string, gateUp: boolean): GemvShape {
  const m = /^(\d+)x(\d+)(?:u(\d+))?(sg)?$/.exec(shape);
  if (!m) throw new Error(`GEMV shape ${shape} is not LxR[uU][sg]`);
  const R = Number(m[2]);
  return { L: Number(m[1]), R: gateUp ? Math.max(2, 2 * Math.ceil(R / 2)) : R, ...(m[3] ? { U: Number(m[3]) } : {}), ...(m[4] ? { sg: true } : {}) };
}

/** The tuning that gives each linear in `table` its chosen shape (steps of ≤ 4 rows: the 1-row choice; chunks: the 16-row one). */
export function gemvTableTuning(table: GemvChoice[]): KernelTuning {
  return {
    gemv: (m: number, gateUp: boolean, w: GemvWeight) => {
      const rows = m <= 4 ? 1 : 16;
      const e = table.find((c) => c.format === w.format && c.cols === w.cols && c.k === w.k && c.gateUp === gateUp && c.rows === rows);
      return e ? parseGemvShape(e.shape, gateUp) : gemvShape(m, gateUp, w);
    },
  };
}

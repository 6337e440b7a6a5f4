/**
 * What the host did in a timed decode loop's longest step (issue 20: one or two steps of 8–88 ms in a loop of
 * ~3 ms steps on the H200, the GPU's own time in them the usual one). `GcLog` keeps V8's collections
 * (a PerformanceObserver of 'gc' entries, on the `performance.now()` clock); `CpuLog` the process's CPU time
 * around each step (every thread: Dawn's and the driver's too), which tells a busy host (CPU ≈ wall: a
 * collection, Dawn's own work) from a blocked one (CPU ≈ 0: a wait inside a call, the thread descheduled);
 * `longestStep` lays a traced step's phases, GPU time, idle gaps and overlapping collections side by side.
 */
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import type { StepTiming } from '@weft/layers';

export interface GcEvent {
  /** ms on the `performance.now()` clock. */
  start: number;
  ms: number;
  kind: 'minor' | 'major' | 'incremental' | 'weakcb' | string;
}

const GC_KINDS: Record<number, GcEvent['kind']> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

const r3 = (x: number) => +x.toFixed(3);

export class GcLog {
  private readonly events: GcEvent[] = [];
  private readonly observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) this.events.push({ start: e.startTime, ms: e.duration, kind: kindOf(e) });
  });

  constructor() {
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** Collections that overlap [from, to] (entries arrive a tick after the collection: `settle` first). */
  within(from: number, to: number): GcEvent[] {
    return this.events.filter((e) => e.start < to && e.start + e.ms > from);
  }

  /** Wait for the observer's pending entries. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  }

  /** Count and ms by kind of the collections in [from, to]. */
  summary(from: number, to: number): Record<string, { n: number; ms: number; max_ms: number }> {
    const out: Record<string, { n: number; ms: number; max_ms: number }> = {};
    for (const e of this.within(from, to)) {
      const s = (out[e.kind] ??= { n: 0, ms: 0, max_ms: 0 });
      s.n++;
      s.ms = r3(s.ms + e.ms);
      s.max_ms = r3(Math.max(s.max_ms, e.ms));
    }
    return out;
  }

  stop(): void {
    this.observer.disconnect();
  }
}

function kindOf(e: PerformanceEntry): GcEvent['kind'] {
  const k = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? -1;
  return GC_KINDS[k] ?? `kind ${k}`;
}

/** The process's CPU ms (user + system, every thread) spent over each step (`begin` before it, `end` after). */
export class CpuLog {
  readonly each: number[] = [];
  private at = process.cpuUsage();

  begin(): void {
    this.at = process.cpuUsage();
  }

  end(): void {
    const d = process.cpuUsage(this.at);
    this.each.push(r3((d.user + d.system) / 1000));
  }

  clear(): void {
    this.each.length = 0;
  }
}

/**
 * Counts `setImmediate` calls: dawn-node's polls (AsyncRunner::ScheduleProcessEvents looks the global up on each
 * one). A bench-only measurement (`--count-polls`): it wraps a global for the process, so it stays opt-in.
 */
export class PollCount {
  n = 0;

  constructor() {
    const orig = globalThis.setImmediate;
    const wrapped = (cb: (...a: unknown[]) => void, ...rest: unknown[]) => {
      this.n++;
      return orig(cb, ...rest);
    };
    globalThis.setImmediate = Object.assign(wrapped, orig) as typeof setImmediate;
  }
}

/** A traced step's host phases in ms (NaN where not marked). */
function phases(t: StepTiming): Record<string, number> {
  return {
    write: r3(t.written - t.start),
    submit: r3(t.submitted - t.written),
    record_next: r3(t.recorded - t.submitted),
    // The host's sleep before the read-back (gpu-wait.ts), inside both waits below.
    slept: r3(t.slept),
    // From the next step's recording (or the submit) to onSubmittedWorkDone's callback and to the mapped read-back.
    wait_done: r3(t.done - (Number.isFinite(t.recorded) ? t.recorded : t.submitted)),
    wait_mapped: r3(t.mapped - (Number.isFinite(t.recorded) ? t.recorded : t.submitted)),
    after_map: r3(t.end - t.mapped),
  };
}

/** A traced step's GPU ms (its pass timestamps), NaN without them. */
export const gpuMs = (t: StepTiming | undefined) => (t && t.gpuEnd !== undefined && t.gpuBegin !== undefined && t.gpuEnd > t.gpuBegin ? (t.gpuEnd - t.gpuBegin) / 1e6 : NaN);

/**
 * The longest step of a traced loop: where its time went (the largest host phase), the GPU's time in it and
 * the GPU's idle gap before and after it, the collections inside it, the CPU time over it (`cpu`: CpuLog.each
 * of the same steps) and the host time between it and the step before (the caller's).
 */
export function longestStep(ts: readonly StepTiming[], gc: GcLog, cpu?: readonly number[]): Record<string, unknown> | null {
  if (!ts.length) return null;
  let i = 0;
  for (let j = 1; j < ts.length; j++) if (ts[j]!.end - ts[j]!.start > ts[i]!.end - ts[i]!.start) i = j;
  const t = ts[i]!;
  const gap = (a: StepTiming | undefined, b: StepTiming | undefined) => (a?.gpuEnd !== undefined && b?.gpuBegin !== undefined ? r3((b.gpuBegin - a.gpuEnd) / 1e6) : null);
  const ph = phases(t);
  const largest = Object.entries(ph).filter(([, ms]) => Number.isFinite(ms)).sort((a, b) => b[1] - a[1])[0];
  const gcs = gc.within(t.start, t.end);
  return {
    index: i,
    step_ms: r3(t.end - t.start),
    phases_ms: ph,
    largest_phase: largest?.[0] ?? null,
    gpu_ms: r3(gpuMs(t)),
    gpu_gap_before_ms: gap(ts[i - 1], t),
    gpu_gap_after_ms: gap(t, ts[i + 1]),
    between_steps_ms: i ? r3(t.start - ts[i - 1]!.end) : null,
    cpu_ms: cpu?.[i] ?? null,
    gc_ms: r3(gcs.reduce((a, e) => a + e.ms, 0)),
    gc: gcs.map((e) => ({ kind: e.kind, at_ms: r3(e.start - t.start), ms: r3(e.ms) })),
  };
}

/** One line for a log: the longest step and what it was. */
export function stallLine(s: Record<string, unknown> | null): string {
  if (!s) return 'no steps';
  const ph = s.phases_ms as Record<string, number>;
  return `longest step #${String(s.index)} ${String(s.step_ms)} ms (largest phase ${String(s.largest_phase)} ${ph[String(s.largest_phase)] ?? '?'} ms; GPU ${String(s.gpu_ms)} ms, GPU idle after ${String(s.gpu_gap_after_ms)} ms; CPU ${String(s.cpu_ms)} ms; GC in it ${String(s.gc_ms)} ms${(s.gc as unknown[]).length ? ` ${JSON.stringify(s.gc)}` : ''})`;
}

/**
 * Waiting for a step's read-back without most of dawn-node's polling. dawn-node resolves `mapAsync` and
 * `onSubmittedWorkDone` by polling: every event-loop turn while one is pending it hands `setImmediate` a new
 * N-API function (heap data and a finalizer) — 40–200 thousand a second of waiting. Minor collections cannot
 * free objects with finalizers, so they fill the old generation and V8's mark-compacts run their finalizers:
 * 20–120 ms pauses every few hundred ms in a C addon that polls the same way, none with plain JS closures
 * (2026-12-04, docs/benchmarks/gpu.md) — the long steps of issue 20 on the H200. `GpuWait` learns, per step
 * shape, how long the read-back takes once the host's own work is done, and sleeps (`Atomics.wait`: no
 * event-loop turns, no CPU) through most of it before `mapAsync` polls for the rest.
 */

/** A synchronous sleep of `ms` (sub-millisecond), or false where the thread may not block (a browser's main thread). */
export function sleepMs(ms: number): boolean {
  if (!(ms > 0)) return true;
  try {
    Atomics.wait(CELL, 0, 0, ms);
    return true;
  } catch {
    return false;
  }
}

const CELL = new Int32Array(new SharedArrayBuffer(4));

/** Waits remembered per step shape: the sleep is their minimum less `MARGIN_MS` (no more than `MAX_SLEEP_MS`). */
const WINDOW = 8;
const MARGIN_MS = 0.3;
const MIN_SLEEP_MS = 0.2;
const MAX_SLEEP_MS = 200;
/** Shapes remembered (serving meets many): the latest. */
const MAX_KEYS = 64;

export class GpuWait {
  private readonly waits = new Map<string, number[]>();
  private enabled = true;

  /**
   * Sleep through the part of the coming wait for `key`'s read-back that every recent one took. Returns the
   * time to hand to `learn` after the read-back resolves.
   */
  before(key: string): number {
    const t = performance.now();
    const w = this.waits.get(key);
    if (this.enabled && w && w.length >= 2) {
      const ms = Math.min(MAX_SLEEP_MS, Math.min(...w) - MARGIN_MS);
      if (ms >= MIN_SLEEP_MS) this.enabled = sleepMs(ms);
    }
    return t;
  }

  /** The read-back for `key` resolved; `from`: what `before` returned. A wait shorter than the sleep lowers the next one. */
  learn(key: string, from: number): void {
    let w = this.waits.get(key);
    if (!w) {
      if (this.waits.size >= MAX_KEYS) this.waits.delete(this.waits.keys().next().value!);
      this.waits.set(key, (w = []));
    }
    w.push(performance.now() - from);
    if (w.length > WINDOW) w.shift();
  }

  clear(): void {
    this.waits.clear();
  }
}

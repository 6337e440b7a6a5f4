/**
 * Waiting on a shared Int32 word until a condition holds, with a deadline.
 * Workers block in Atomics.wait (cheapest wake-up); the main thread must stay
 * responsive, so it uses Atomics.waitAsync (or a short setTimeout poll where
 * waitAsync is missing).
 */

type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
type WaitAsyncFn = (ta: Int32Array, index: number, value: number, timeout?: number) => WaitAsyncResult;

const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsyncFn }).waitAsync;

/** Milliseconds left until `deadline` (performance.now() based); Infinity stays Infinity. */
export function remaining(deadline: number): number {
  return deadline === Infinity ? Infinity : Math.max(0, deadline - performance.now());
}

export function deadlineAfter(timeoutMs: number): number {
  return timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
}

/**
 * Block until `ready()` is true. `word` is bumped (and notified) by whoever
 * changes the state `ready` looks at. Spins for `spinUs` microseconds first:
 * a wake-up through the kernel costs tens to hundreds of microseconds (and
 * sits on the critical path of every barrier), a few loads cost nanoseconds.
 * Returns false on timeout.
 */
export function waitSync(ctrl: Int32Array, word: number, ready: () => boolean, deadline: number, spinUs = 0): boolean {
  if (spinUs > 0) {
    const until = performance.now() + spinUs / 1000;
    do {
      for (let i = 0; i < 32; i++) if (ready()) return true;
    } while (performance.now() < until);
  }
  for (;;) {
    const seen = Atomics.load(ctrl, word);
    if (ready()) return true;
    const left = remaining(deadline);
    if (left <= 0) return false;
    Atomics.wait(ctrl, word, seen, left);
  }
}

/** waitSync for the main thread: never blocks the event loop. */
export async function waitAsyncUntil(ctrl: Int32Array, word: number, ready: () => boolean, deadline: number): Promise<boolean> {
  for (;;) {
    const seen = Atomics.load(ctrl, word);
    if (ready()) return true;
    const left = remaining(deadline);
    if (left <= 0) return false;
    if (waitAsync) {
      const r = waitAsync(ctrl, word, seen, left);
      if (r.async) {
        // A pending waitAsync does not keep a thread's event loop alive; a timer does.
        const keepAlive = setInterval(() => {}, 1 << 30);
        try {
          await r.value;
        } finally {
          clearInterval(keepAlive);
        }
      }
    } else {
      await new Promise((resolve) => setTimeout(resolve, Math.min(left, 1)));
    }
  }
}

/** Bump a word and wake everyone waiting on it. */
export function bump(ctrl: Int32Array, word: number): void {
  Atomics.add(ctrl, word, 1);
  Atomics.notify(ctrl, word);
}

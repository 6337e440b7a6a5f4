/**
 * Per-rank timeline in Chrome trace event format (opens in Perfetto): a span
 * for each layer's compute and each collective. Collectives are traced by
 * wrapping the group coordinators, so model code stays untouched.
 */
import type { GroupCoordinator, ParallelState } from '@weft/comm';

/** Chrome trace event ('X' = complete span). */
export interface TraceEvent {
  name: string;
  cat: string;
  ph: 'X';
  ts: number;
  dur: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

export class Tracer {
  readonly events: TraceEvent[] = [];
  private readonly t0 = performance.timeOrigin;

  constructor(readonly rank: number) {}

  async span<T>(name: string, cat: string, fn: () => Promise<T>, args?: Record<string, unknown>): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      const end = performance.now();
      this.events.push({ name, cat, ph: 'X', ts: (this.t0 + start) * 1000, dur: (end - start) * 1000, pid: 0, tid: this.rank, args });
    }
  }

  drain(): TraceEvent[] {
    return this.events.splice(0, this.events.length);
  }
}

/** Run `fn` inside a span when a tracer is given. */
export function traced<T>(tracer: Tracer | null | undefined, name: string, cat: string, fn: () => Promise<T>): Promise<T> {
  return tracer ? tracer.span(name, cat, fn) : fn();
}

const COLLECTIVES = new Set([
  'allReduce', 'allGather', 'reduceScatter', 'gather', 'broadcast', 'broadcastObject',
  'send', 'recv', 'sendTensorDict', 'recvTensorDict', 'allToAll', 'barrier',
]);

/** A view of `group` whose collectives record spans named `tp:0 allReduce`. */
export function traceGroup(group: GroupCoordinator, tracer: Tracer): GroupCoordinator {
  return new Proxy(group, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || !COLLECTIVES.has(prop) || typeof value !== 'function' || target.worldSize === 1) return value;
      return (...args: unknown[]) =>
        tracer.span(`${target.uniqueName} ${prop}`, 'collective', () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
    },
  });
}

export function traceState(state: ParallelState, tracer: Tracer): ParallelState {
  return {
    ...state,
    world: traceGroup(state.world, tracer),
    tp: traceGroup(state.tp, tracer),
    pp: traceGroup(state.pp, tracer),
    dp: traceGroup(state.dp, tracer),
    ep: traceGroup(state.ep, tracer),
  };
}

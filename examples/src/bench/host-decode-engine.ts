/**
 * host-decode-profile's engine side: the same checkpoint and format through `LLM` (worker-thread rank, host plan),
 * decode timed as a user sees it — the gap between streamed tokens — in the same process as the bare executor's
 * rounds, so that the difference is what the engine adds around a step (driver ↔ rank messages, the scheduler, the
 * rank's step set-up and sampling). With `trace`, each decode token is split by the rank's own spans: its step
 * (`step N`), the executor's step inside it (`plan step`), and the rank's wait for the next step message (split at
 * the moment the token reaches the stream here: the result's way to the caller, then the next step's way to the rank).
 */
import { LLM } from '@weft/engine';
import { median } from './stats.js';
import { PLAN_FORMATS } from './plan-rank.js';

const QUANTIZATION = { q8_0: 'int8', q4_0: 'int4' } as const;

/** A prompt of `len` ids in [3, vocab) that no other round shares (no prefix-cache hit). */
const promptOf = (len: number, vocab: number, salt: number) => Array.from({ length: len }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (vocab - 3)));

interface Span {
  name: string;
  ts: number;
  dur: number;
}

export async function engineRank(dir: string, fmt: string, o: { C: number; N: number; V: number; backend: string; trace: boolean }) {
  const format = PLAN_FORMATS[fmt]!;
  const llm = await LLM.load(dir, {
    backend: o.backend as 'tensorflow',
    dtype: format.dtype,
    ...(format.quantization ? { quantization: QUANTIZATION[format.quantization as keyof typeof QUANTIZATION] } : {}),
    maxNumSeqs: 1,
    maxModelLen: o.C + o.N + 8,
    trace: o.trace,
  });
  const gaps: number[] = [];
  const split = { rankStep: [] as number[], planStep: [] as number[], rankOutsidePlan: [] as number[], rankWait: [] as number[], resultToToken: [] as number[], tokenToNextStep: [] as number[] };
  let salt = 1;
  let seen = 0; // trace events already split (LLM.trace() returns them all)
  return {
    stepPath: llm.stepPath,
    /** One generation: a C-token prompt, then N + 1 tokens streamed; the N gaps after the first token are decode steps. */
    async round() {
      seen = llm.trace().traceEvents.length; // what came before this round
      const arrivals: number[] = [];
      for await (const ev of llm.stream(promptOf(o.C, o.V, salt++), { maxTokens: o.N + 1, temperature: 0, ignoreEos: true })) {
        for (let i = 0; i < ev.tokenIds.length; i++) arrivals.push(performance.timeOrigin + performance.now());
      }
      for (let i = 2; i < arrivals.length; i++) gaps.push(arrivals[i]! - arrivals[i - 1]!);
      if (!o.trace) return;
      // The rank's spans, epoch µs: steps in order; the first is the prefill, the rest one token each.
      await new Promise((r) => setTimeout(r, 50)); // the last step's trace message follows its result
      const ev = llm.trace().traceEvents.slice(seen) as Span[];
      const steps = ev.filter((e) => /^step \d+$/.test(e.name));
      // one executor step a token (the first: the prompt's); a step span without one only frees a finished sequence
      const plans = ev.filter((e) => e.name === 'plan step').sort((a, b) => a.ts - b.ts);
      const around = (p: Span) => steps.find((s) => s.ts <= p.ts && p.ts + p.dur <= s.ts + s.dur)!;
      for (let i = 2; i < plans.length; i++) {
        const s = around(plans[i]!), prev = around(plans[i - 1]!);
        split.rankStep.push(s.dur / 1000);
        split.planStep.push(plans[i]!.dur / 1000);
        split.rankOutsidePlan.push((s.dur - plans[i]!.dur) / 1000);
        split.rankWait.push((s.ts - (prev.ts + prev.dur)) / 1000);
        // the rank's wait, from this thread's clock: its result to the token streamed here, then to the next step's start
        const arrived = arrivals[i - 1]! * 1000; // epoch µs of the token step i − 1 sampled
        split.resultToToken.push((arrived - (prev.ts + prev.dur)) / 1000);
        split.tokenToNextStep.push((s.ts - arrived) / 1000);
      }
    },
    async finish(): Promise<Record<string, unknown>> {
      await llm.close();
      const ms = median(gaps);
      const row: Record<string, unknown> = {
        format: fmt, variant: o.trace ? 'engine (traced)' : 'engine', stepPath: llm.stepPath, tokS: +(1000 / ms).toFixed(2), stepMs: +ms.toFixed(3),
        stepMinMs: +Math.min(...gaps).toFixed(3), tokens: gaps.length,
      };
      // median, and the least of any token (what it costs when nobody preempts it)
      if (o.trace) row.split = Object.fromEntries(Object.entries(split).map(([k, v]) => [k, { ms: +median(v).toFixed(3), minMs: +Math.min(...v).toFixed(3) }]));
      return row;
    },
  };
}

/**
 * Prometheus metrics (prom-client, one registry per server), named as vLLM
 * names them with a `weft:` prefix: engine gauges and counters read from
 * `llm.stats()` at scrape time, latency histograms observed per request.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LLMStats as EngineStats } from '@weft/engine';
import type { EngineClient } from './engine-client.js';

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const TOKEN_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];

export interface ServerMetrics {
  registry: Registry;
  ttft: Histogram<'model_name'>;
  tpot: Histogram<'model_name'>;
  e2e: Histogram<'model_name'>;
  finished: Counter<'model_name' | 'finished_reason'>;
  rejected: Counter<'model_name' | 'status'>;
  /** Requests this server holds (running or waiting in the engine). */
  inFlight: Gauge<'model_name'>;
}

export function createMetrics(llm: EngineClient, modelName: string): ServerMetrics {
  const registry = new Registry();
  const labels = { model_name: modelName };
  const engineGauge = (name: string, help: string, read: (s: EngineStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['model_name'],
      registers: [registry],
      collect() {
        this.set(labels, read(llm.stats()));
      },
    });
  // Engine totals are cumulative; counters follow them by the difference since the last scrape.
  const engineCounter = (name: string, help: string, read: (s: EngineStats) => number) => {
    let last = 0;
    return new Counter({
      name,
      help,
      labelNames: ['model_name'],
      registers: [registry],
      collect() {
        const now = read(llm.stats());
        // inc by 0 too: the series exists (at 0) before the first event.
        this.inc(labels, Math.max(0, now - last));
        last = Math.max(last, now);
      },
    });
  };
  engineGauge('weft:num_requests_running', 'Requests in the engine batch.', (s) => s.running);
  engineGauge('weft:num_requests_waiting', 'Requests waiting to be scheduled.', (s) => s.waiting);
  engineGauge('weft:kv_cache_blocks_used', 'KV-cache blocks in use.', (s) => s.kvBlocksUsed);
  engineGauge('weft:kv_cache_blocks_total', 'KV-cache blocks in the pool.', (s) => s.kvBlocksTotal);
  engineGauge('weft:kv_cache_usage_perc', 'KV-cache usage, 0..1.', (s) => (s.kvBlocksTotal ? s.kvBlocksUsed / s.kvBlocksTotal : 0));
  engineCounter('weft:prompt_tokens_total', 'Prefill tokens processed.', (s) => s.promptTokens);
  engineCounter('weft:generation_tokens_total', 'Tokens generated.', (s) => s.generationTokens);
  engineCounter('weft:prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache.', (s) => s.prefixCacheQueries);
  engineCounter('weft:prefix_cache_hits_total', 'Prompt tokens found in the prefix cache.', (s) => s.prefixCacheHits);
  engineCounter('weft:num_preemptions_total', 'Preemptions.', (s) => s.preemptions);
  new Gauge({
    name: 'weft:engine_healthy',
    help: '1 while every rank is alive, 0 once the engine is dead.',
    labelNames: ['model_name'],
    registers: [registry],
    collect() {
      this.set(labels, llm.health().ok ? 1 : 0);
    },
  });
  const finished = new Counter({ name: 'weft:request_success_total', help: 'Finished requests by finish reason (abort: client gone or shutdown).', labelNames: ['model_name', 'finished_reason'], registers: [registry] });
  const rejected = new Counter({ name: 'weft:request_rejected_total', help: 'Requests refused before reaching the engine, by HTTP status.', labelNames: ['model_name', 'status'], registers: [registry] });
  // Every series present at 0 from the start, so rate() and alerts see the first event.
  for (const reason of ['stop', 'length', 'abort']) finished.inc({ ...labels, finished_reason: reason }, 0);
  for (const status of ['429', '503']) rejected.inc({ ...labels, status }, 0);
  return {
    registry,
    ttft: new Histogram({ name: 'weft:time_to_first_token_seconds', help: 'Time to first token.', labelNames: ['model_name'], buckets: LATENCY_BUCKETS, registers: [registry] }),
    tpot: new Histogram({ name: 'weft:time_per_output_token_seconds', help: 'Time per output token after the first.', labelNames: ['model_name'], buckets: TOKEN_LATENCY_BUCKETS, registers: [registry] }),
    e2e: new Histogram({ name: 'weft:e2e_request_latency_seconds', help: 'End-to-end request latency.', labelNames: ['model_name'], buckets: LATENCY_BUCKETS, registers: [registry] }),
    finished,
    rejected,
    inFlight: new Gauge({ name: 'weft:http_requests_in_flight', help: 'Generation requests this server holds.', labelNames: ['model_name'], registers: [registry] }),
  };
}

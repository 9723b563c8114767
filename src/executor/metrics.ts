/** The executor's Prometheus metrics, on a registry owned by the process (never the global one). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const METRICS_PREFIX = 'mcpworks_executor_';

export interface ExecutorMetrics {
  registry: Registry;
  calls: Counter<'runtime' | 'outcome' | 'sandbox'>;
  duration: Histogram<'runtime' | 'sandbox'>;
  inFlight: Gauge;
  rejected: Counter<'reason'>;
  ready: Gauge;
}

export function createExecutorMetrics(options: { defaultMetrics?: boolean } = {}): ExecutorMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true)
    collectDefaultMetrics({ register: registry, prefix: METRICS_PREFIX });
  return {
    registry,
    calls: new Counter({
      name: `${METRICS_PREFIX}calls_total`,
      help: 'Tool calls run, by runtime, outcome and sandbox kind (warm or cold)',
      labelNames: ['runtime', 'outcome', 'sandbox'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: `${METRICS_PREFIX}call_duration_seconds`,
      help: 'Wall time of a tool call inside the executor',
      labelNames: ['runtime', 'sandbox'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: `${METRICS_PREFIX}calls_in_flight`,
      help: 'Tool calls running now',
      registers: [registry],
    }),
    rejected: new Counter({
      name: `${METRICS_PREFIX}requests_rejected_total`,
      help: 'Requests refused before running: unauthenticated, invalid, overloaded, draining, not_ready',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    ready: new Gauge({
      name: `${METRICS_PREFIX}ready`,
      help: '1 once the sandbox self-test passed and the executor accepts calls',
      registers: [registry],
    }),
  };
}

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The controller's metrics, one registry per process (never the global one). */
export interface ControllerMetrics {
  registry: Registry;
  reconcileTotal: Counter<'controller' | 'result'>;
  reconcileDuration: Histogram<'controller'>;
  reconcileErrors: Counter<'controller'>;
  workqueueDepth: Gauge<'controller'>;
  apiWrites: Counter<'verb' | 'resource'>;
  /** Applies answered with an unchanged resourceVersion: the write was not needed. */
  unchangedWrites: Counter<'resource'>;
  /** What queued each reconcile (the first trigger; later ones coalesce into it). */
  reconcileTriggers: Counter<'controller' | 'trigger'>;
  /** Watch events that were the echo of the controller's own write and queued nothing. */
  ownWriteEvents: Counter<'resource'>;
  isLeader: Gauge;
}

export function createControllerMetrics(
  options: { defaultMetrics?: boolean } = {},
): ControllerMetrics {
  const registry = new Registry();
  if (options.defaultMetrics)
    collectDefaultMetrics({ register: registry, prefix: 'mcpworks_controller_' });
  const registers = [registry];
  return {
    registry,
    reconcileTotal: new Counter({
      name: 'mcpworks_controller_reconcile_total',
      help: 'Reconciles by controller and result (success, error, requeue).',
      labelNames: ['controller', 'result'],
      registers,
    }),
    reconcileDuration: new Histogram({
      name: 'mcpworks_controller_reconcile_duration_seconds',
      help: 'Time spent in one reconcile.',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    reconcileErrors: new Counter({
      name: 'mcpworks_controller_reconcile_errors_total',
      help: 'Reconciles that failed and were requeued with backoff.',
      labelNames: ['controller'],
      registers,
    }),
    workqueueDepth: new Gauge({
      name: 'mcpworks_controller_workqueue_depth',
      help: 'Keys waiting in the work queue.',
      labelNames: ['controller'],
      registers,
    }),
    apiWrites: new Counter({
      name: 'mcpworks_controller_api_writes_total',
      help: 'Write requests sent to the API server, by verb and resource.',
      labelNames: ['verb', 'resource'],
      registers,
    }),
    unchangedWrites: new Counter({
      name: 'mcpworks_controller_api_unchanged_writes_total',
      help: 'Applies the API server answered with the resourceVersion the object already had (nothing changed).',
      labelNames: ['resource'],
      registers,
    }),
    reconcileTriggers: new Counter({
      name: 'mcpworks_controller_reconcile_triggers_total',
      help: 'Reconciles by what queued the key (mcpserver, a child resource, policy, namespace, resync, requeue, concurrent-change).',
      labelNames: ['controller', 'trigger'],
      registers,
    }),
    ownWriteEvents: new Counter({
      name: 'mcpworks_controller_own_write_events_total',
      help: "Watch events that were the echo of the controller's own write and queued no reconcile.",
      labelNames: ['resource'],
      registers,
    }),
    isLeader: new Gauge({
      name: 'mcpworks_controller_leader',
      help: '1 while this process holds the leader lease.',
      registers,
    }),
  };
}

/** Sum of api_writes_total, optionally leaving out some resources (leases renew by design). */
export async function countWrites(
  metrics: ControllerMetrics,
  exclude: readonly string[] = ['leases'],
): Promise<number> {
  const data = await metrics.apiWrites.get();
  return data.values
    .filter((v) => !exclude.includes(String(v.labels.resource)))
    .reduce((sum, v) => sum + v.value, 0);
}

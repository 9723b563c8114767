/**
 * The operator process: caches, work queues, reconcilers, leader election, resync. Everything
 * it talks to is passed in (KubeClient, clock, logger, metrics), so tests run it in-process
 * against the real API server and `mcpworks controller` only wires the real ones.
 */
import { systemClock, type Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { createKubeClient, type KubeClient } from '../k8s/client.ts';
import type { KubeConnection } from '../k8s/kubeconfig.ts';
import { createEventRecorder } from '../k8s/events.ts';
import { createInformer, type Informer, type InformerOptions } from '../k8s/informer.ts';
import { createLeaderElector, type LeaderElector } from '../k8s/leader-election.ts';
import { Resources, type ResourceType } from '../k8s/resources.ts';
import { objectKey, type KubeObject } from '../k8s/types.ts';
import { DEFAULT_WORKLOAD_OPTIONS, type WorkloadOptions } from './desired-workloads.ts';
import { childShapes, prune } from './cache-shape.ts';
import { createControllerMetrics, type ControllerMetrics } from './metrics.ts';
import { Labels, MANAGED_BY_SELECTOR } from './names.ts';
import { createOwnWrites, ownWriteId } from './own-writes.ts';
import { createPolicyReconciler, policyQueueKey } from './policy-reconciler.ts';
import { validatePolicy, type ParsedPolicy } from './policy-validation.ts';
import {
  CONCURRENT_CHANGE_TRIGGER,
  createServerReconciler,
  type ServerCaches,
} from './server-reconciler.ts';
import { createWorkQueue, type ProcessResult, type WorkQueue } from './workqueue.ts';

/** What queues an McpServer or policy key (the `trigger` label of reconcile_triggers_total). */
export const Triggers = {
  server: 'mcpserver',
  policy: 'policy',
  namespace: 'namespace',
  resync: 'resync',
} as const;

export interface LeaderElectionConfig {
  namespace: string;
  name?: string;
  identity: string;
  leaseDurationSeconds?: number;
  retryPeriodMs?: number;
  renewDeadlineMs?: number;
}

export interface ControllerOptions {
  kubeConfig: KubeConnection;
  logger: Logger;
  clock?: Clock;
  metrics?: ControllerMetrics;
  workloads?: Partial<WorkloadOptions>;
  /** Reconciles running at once per kind (default 32). */
  concurrency?: number;
  /** Every key is reconciled again this often, changed or not (default 10 minutes). */
  resyncMs?: number;
  /** Degraded servers look for their missing Secret / ConfigMap again after this (default 30 s). */
  recheckMissingInputsMs?: number;
  /** Backoff cap for failing reconciles (default 60 s). */
  maxBackoffMs?: number;
  /** Connections to the API server with `transport: 'http1'` (default: the concurrency, at least 16). */
  maxSockets?: number;
  /**
   * API requests sent at once, whatever the number of reconciles (default: no limit; Lease
   * renewals and watches never count). Measured: a cap of 64 did not converge faster (docs/adr/0003).
   */
  maxRequestsInFlight?: number;
  /** Default `http2` (watches use HTTP/1.1 either way); see src/k8s/client.ts. */
  transport?: 'http1' | 'http2';
  /** Undefined: no leader election (a single replica, tests). */
  leaderElection?: LeaderElectionConfig;
  /** Injected for tests that want a fixed token. */
  newToken?: () => string;
}

export interface Controller {
  /** Starts leader election; once leading, the caches, then the workers. Resolves when leading and synced. */
  start(): Promise<void>;
  /** Graceful: stops taking work, waits for running reconciles, releases the lease. */
  stop(): Promise<void>;
  metrics: ControllerMetrics;
  client: KubeClient;
  isLeader(): boolean;
  /** Live as long as the process has not lost leadership. */
  healthy(): boolean;
  /** Caches synced (or a standby waiting for the lease). */
  ready(): boolean;
  /** Called when leadership is lost after it was held; the process should exit. */
  onLeadershipLost(fn: () => void): void;
  /** Resolves when both queues are empty and no reconcile is running. */
  idle(): Promise<void>;
}

export const SERVER_CONTROLLER = 'mcpserver';
export const POLICY_CONTROLLER = 'agentpolicy';

export function createController(options: ControllerOptions): Controller {
  const clock = options.clock ?? systemClock;
  const logger = options.logger.child({ component: 'controller' });
  const metrics = options.metrics ?? createControllerMetrics();
  const concurrency = options.concurrency ?? 32;
  const client = createKubeClient(options.kubeConfig, {
    // HTTP/2: one connection, a stream per request, so the API server, not a socket pool, sets
    // the pace (a reconcile sends up to 9 applies at once; with HTTP/1.1 the slow Service
    // applies held the sockets and everything else queued behind them).
    transport: options.transport ?? 'http2',
    maxSockets: options.maxSockets ?? Math.max(16, concurrency),
    ...(options.maxRequestsInFlight !== undefined
      ? { maxRequestsInFlight: options.maxRequestsInFlight }
      : {}),
    onWrite: (verb, resource) => metrics.apiWrites.inc({ verb, resource }),
  });
  const workloads: WorkloadOptions = { ...DEFAULT_WORKLOAD_OPTIONS, ...options.workloads };
  const events = createEventRecorder({ client, clock, logger, component: 'mcpworks-controller' });
  const informerOptions = { logger, maxBackoffMs: 10_000 };
  const informer = (type: ResourceType, opts: InformerOptions) =>
    createInformer<KubeObject>(client, type, opts);
  // Children: only ours (label), and only the fields we compare (cache-shape.ts).
  const shapes = childShapes();
  const owned = (type: ResourceType) => {
    const shape = shapes.get(type.kind);
    if (!shape) throw new Error(`no cache shape for ${type.kind}`);
    return informer(type, {
      ...informerOptions,
      labelSelector: MANAGED_BY_SELECTOR,
      transform: (obj) => ({
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        ...(prune(obj, shape) as KubeObject),
      }),
    });
  };

  const caches: ServerCaches = {
    servers: informer(Resources.McpServer, informerOptions),
    namespaces: informer(Resources.Namespace, informerOptions),
    agentPolicies: informer(Resources.AgentPolicy, informerOptions),
    clusterPolicies: informer(Resources.ClusterAgentPolicy, informerOptions),
    deployments: owned(Resources.Deployment),
    services: owned(Resources.Service),
    serviceAccounts: owned(Resources.ServiceAccount),
    secrets: owned(Resources.Secret),
    networkPolicies: owned(Resources.NetworkPolicy),
    roles: owned(Resources.Role),
    roleBindings: owned(Resources.RoleBinding),
    clusterRoleBindings: owned(Resources.ClusterRoleBinding),
  };
  const allCaches: Informer<KubeObject>[] = Object.values(caches);

  // Validation is pure but not free (CEL): memoize per object version.
  const parsedPolicies = new Map<string, { version: string; result: ParsedPolicy }>();
  const parsePolicy = (raw: KubeObject): ParsedPolicy => {
    const key = `${raw.kind}/${objectKey(raw)}`;
    const version = `${raw.metadata?.uid}/${raw.metadata?.generation}`;
    const hit = parsedPolicies.get(key);
    if (hit && hit.version === version) return hit.result;
    const result = validatePolicy(raw);
    parsedPolicies.set(key, { version, result });
    return result;
  };

  const serverQueue = createWorkQueue({
    concurrency,
    maxDelayMs: options.maxBackoffMs ?? 60_000,
    onDepth: (d) => metrics.workqueueDepth.set({ controller: SERVER_CONTROLLER }, d),
  });
  const policyQueue = createWorkQueue({
    concurrency: Math.max(1, Math.floor(concurrency / 2)),
    maxDelayMs: options.maxBackoffMs ?? 60_000,
    onDepth: (d) => metrics.workqueueDepth.set({ controller: POLICY_CONTROLLER }, d),
  });

  // The echoes of our own writes queue nothing (own-writes.ts, docs/adr/0003).
  const ownWrites = createOwnWrites();
  /** True when the event is our own write's echo (counted); deletions never are. */
  const isOwnWrite = (type: ResourceType, event: string, obj: KubeObject): boolean => {
    const id = ownWriteId(type.plural, objectKey(obj));
    if (event === 'deleted') {
      ownWrites.forget(id);
      return false;
    }
    if (!ownWrites.absorbs(id, obj.metadata?.resourceVersion)) return false;
    metrics.ownWriteEvents.inc({ resource: type.plural });
    return true;
  };

  const reconcileServer = createServerReconciler({
    client,
    caches,
    events,
    clock,
    logger,
    workloads,
    parsePolicy,
    recheckMissingInputsMs: options.recheckMissingInputsMs ?? 30_000,
    ...(options.newToken ? { newToken: options.newToken } : {}),
    ownWrites,
    requeue: (key, trigger) => serverQueue.add(key, trigger),
    onApplied: (resource, changed) => {
      if (!changed) metrics.unchangedWrites.inc({ resource });
    },
  });
  const reconcilePolicy = createPolicyReconciler({
    client,
    agentPolicies: caches.agentPolicies,
    clusterPolicies: caches.clusterPolicies,
    events,
    clock,
    logger,
    parsePolicy,
    ownWrites,
    onConcurrentChange: (policy) => {
      policyQueue.add(policyQueueKey(policy), CONCURRENT_CHANGE_TRIGGER);
      enqueueServersIn(
        policy.kind === 'ClusterAgentPolicy' ? undefined : policy.metadata?.namespace,
        CONCURRENT_CHANGE_TRIGGER,
      );
    },
  });

  const instrument =
    (controller: string, fn: (key: string) => Promise<ProcessResult>) =>
    async (key: string, trigger: string): Promise<ProcessResult> => {
      metrics.reconcileTriggers.inc({ controller, trigger });
      const end = metrics.reconcileDuration.startTimer({ controller });
      try {
        const result = await fn(key);
        metrics.reconcileTotal.inc({
          controller,
          result: result?.requeueAfterMs !== undefined ? 'requeue' : 'success',
        });
        return result;
      } catch (error) {
        metrics.reconcileTotal.inc({ controller, result: 'error' });
        metrics.reconcileErrors.inc({ controller });
        throw error;
      } finally {
        end();
      }
    };

  // Event routing: every change maps to the keys whose desired state it can affect.
  const enqueueServersIn = (namespace: string | undefined, trigger: string) => {
    for (const s of caches.servers.list()) {
      if (namespace === undefined || s.metadata?.namespace === namespace)
        serverQueue.add(objectKey(s), trigger);
    }
  };
  caches.servers.on((type, obj) => {
    if (!isOwnWrite(Resources.McpServer, type, obj))
      serverQueue.add(objectKey(obj), Triggers.server);
  });
  const children: [ResourceType, Informer<KubeObject>][] = [
    [Resources.Deployment, caches.deployments],
    [Resources.Service, caches.services],
    [Resources.ServiceAccount, caches.serviceAccounts],
    [Resources.Secret, caches.secrets],
    [Resources.NetworkPolicy, caches.networkPolicies],
    [Resources.Role, caches.roles],
    [Resources.RoleBinding, caches.roleBindings],
  ];
  for (const [resource, cache] of children) {
    cache.on((type, obj) => {
      const owner = obj.metadata?.ownerReferences?.find(
        (o) => o.controller && o.kind === 'McpServer',
      );
      if (!owner || !obj.metadata?.namespace || isOwnWrite(resource, type, obj)) return;
      serverQueue.add(`${obj.metadata.namespace}/${owner.name}`, resource.plural);
    });
  }
  caches.clusterRoleBindings.on((type, obj) => {
    const labels = obj.metadata?.labels ?? {};
    const name = labels[Labels.server];
    const ns = labels[Labels.serverNamespace];
    if (!name || !ns || isOwnWrite(Resources.ClusterRoleBinding, type, obj)) return;
    serverQueue.add(`${ns}/${name}`, Resources.ClusterRoleBinding.plural);
  });
  // A policy's own status write (the policy reconciler's) changes nothing any server shows.
  caches.agentPolicies.on((type, obj) => {
    if (isOwnWrite(Resources.AgentPolicy, type, obj)) return;
    policyQueue.add(policyQueueKey(obj), Triggers.policy);
    enqueueServersIn(obj.metadata?.namespace, Triggers.policy);
  });
  caches.clusterPolicies.on((type, obj) => {
    if (isOwnWrite(Resources.ClusterAgentPolicy, type, obj)) return;
    policyQueue.add(policyQueueKey(obj), Triggers.policy);
    enqueueServersIn(undefined, Triggers.policy);
  });
  caches.namespaces.on((type, obj, old) => {
    if (
      type === 'modified' &&
      JSON.stringify(obj.metadata?.labels ?? {}) === JSON.stringify(old?.metadata?.labels ?? {})
    )
      return;
    enqueueServersIn(obj.metadata?.name, Triggers.namespace);
  });

  let elector: LeaderElector | undefined;
  let leading = !options.leaderElection;
  let lost = false;
  let synced = false;
  let resyncTimer: NodeJS.Timeout | undefined;
  const lostHandlers: (() => void)[] = [];
  let stopping: Promise<void> | undefined;

  async function stopWork(): Promise<void> {
    if (resyncTimer) clearInterval(resyncTimer);
    await Promise.all([serverQueue.shutdown(), policyQueue.shutdown()]);
    await Promise.all(allCaches.map((c) => c.stop()));
  }

  return {
    metrics,
    client,
    async start() {
      if (options.leaderElection) {
        const le = options.leaderElection;
        elector = createLeaderElector({
          client,
          clock,
          logger,
          namespace: le.namespace,
          name: le.name ?? 'mcpworks-controller',
          identity: le.identity,
          ...(le.leaseDurationSeconds !== undefined
            ? { leaseDurationSeconds: le.leaseDurationSeconds }
            : {}),
          ...(le.retryPeriodMs !== undefined ? { retryPeriodMs: le.retryPeriodMs } : {}),
          ...(le.renewDeadlineMs !== undefined ? { renewDeadlineMs: le.renewDeadlineMs } : {}),
        });
        elector.onLost(() => {
          lost = true;
          leading = false;
          metrics.isLeader.set(0);
          void stopWork().finally(() => {
            for (const fn of lostHandlers) fn();
          });
        });
        await elector.run();
        leading = true;
      }
      metrics.isLeader.set(1);
      logger.info('leading: starting caches');
      for (const cache of allCaches) cache.start();
      await Promise.all(allCaches.map((c) => c.synced()));
      synced = true;
      const onError = (controller: string) => (key: string, error: unknown) =>
        logger.warn({ controller, key, err: error }, 'reconcile failed, will retry with backoff');
      serverQueue.start(instrument(SERVER_CONTROLLER, reconcileServer), onError(SERVER_CONTROLLER));
      policyQueue.start(instrument(POLICY_CONTROLLER, reconcilePolicy), onError(POLICY_CONTROLLER));
      const resyncMs = options.resyncMs ?? 600_000;
      resyncTimer = setInterval(() => {
        enqueueServersIn(undefined, Triggers.resync);
        for (const p of [...caches.agentPolicies.list(), ...caches.clusterPolicies.list()])
          policyQueue.add(policyQueueKey(p), Triggers.resync);
      }, resyncMs);
      resyncTimer.unref();
      logger.info('caches synced: reconciling');
    },
    stop() {
      stopping ??= (async () => {
        await stopWork();
        await elector?.release();
        metrics.isLeader.set(0);
      })();
      return stopping;
    },
    isLeader: () => leading && !lost,
    healthy: () => !lost,
    ready: () => !lost && (!leading || synced),
    onLeadershipLost(fn) {
      lostHandlers.push(fn);
    },
    async idle() {
      await Promise.all([serverQueue.idle(), policyQueue.idle()]);
    },
  };
}

export type { WorkQueue };

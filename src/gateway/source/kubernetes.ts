/**
 * The in-cluster GatewayConfigSource of `mcpworks gateway` (ADR 0001): watches, read-only, its
 * McpServer, the AgentPolicies of its namespace, the ClusterAgentPolicies, its namespace's
 * labels, its API-key Secret and the ConfigMaps of its namespace (tools' `codeFrom`), and
 * publishes a new snapshot after every change: a policy edit or a revoked key applies to the
 * next request, without a restart. Snapshots are built by the same `buildSnapshots` as
 * `mcpworks serve`, so both paths compile policies and resolve tools identically.
 */
import { McpServerSchema } from '../../api/v1alpha1/mcpserver.ts';
import {
  ConfigMapManifestSchema,
  SecretManifestSchema,
  type Manifests,
} from '../../api/manifests.ts';
import type { AgentPolicy, ClusterAgentPolicy } from '../../api/v1alpha1/agentpolicy.ts';
import { ErrorCode, McpworksError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { KubeClient } from '../../k8s/client.ts';
import { createInformer, type Informer } from '../../k8s/informer.ts';
import { Resources } from '../../k8s/resources.ts';
import type { KubeObject } from '../../k8s/types.ts';
import { buildSnapshots } from './static.ts';
import type { GatewayConfigSource, GatewaySnapshot } from './types.ts';

export interface KubernetesSourceOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  logger: Logger;
  /** How long start() waits for a first valid snapshot (default 30 s). */
  startTimeoutMs?: number;
}

export interface KubernetesSource extends GatewayConfigSource {
  /** Resolves once the caches are synced and a first snapshot is built. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createKubernetesSource(options: KubernetesSourceOptions): KubernetesSource {
  const { client, namespace, name } = options;
  const log = options.logger.child({ source: 'kubernetes', mcpserver: `${namespace}/${name}` });
  const base = { logger: log, maxBackoffMs: 10_000 };
  const server = createInformer<KubeObject>(client, Resources.McpServer, {
    ...base,
    namespace,
    fieldSelector: `metadata.name=${name}`,
  });
  const policies = createInformer<KubeObject>(client, Resources.AgentPolicy, {
    ...base,
    namespace,
  });
  const clusterPolicies = createInformer<KubeObject>(client, Resources.ClusterAgentPolicy, base);
  const ns = createInformer<KubeObject>(client, Resources.Namespace, {
    ...base,
    fieldSelector: `metadata.name=${namespace}`,
  });
  const configMaps = createInformer<KubeObject>(client, Resources.ConfigMap, {
    ...base,
    namespace,
  });
  let secret: { name: string; informer: Informer<KubeObject> } | undefined;

  let current: GatewaySnapshot | undefined;
  let revision = 0;
  let pending = false;
  const listeners = new Set<(snapshot: GatewaySnapshot) => void>();
  let firstSnapshot: () => void = () => {};
  const first = new Promise<void>((resolve) => (firstSnapshot = resolve));

  /** The Secret informer follows spec.auth.apiKeys.secretRef (watched by name: its Role names it). */
  function followSecret(secretName: string | undefined): void {
    if (secret?.name === secretName) return;
    void secret?.informer.stop();
    secret = undefined;
    if (!secretName) return;
    const informer = createInformer<KubeObject>(client, Resources.Secret, {
      ...base,
      namespace,
      fieldSelector: `metadata.name=${secretName}`,
    });
    informer.on(schedule);
    informer.start();
    // An absent Secret lists empty and emits nothing: rebuild once the list is in.
    void informer.synced().then(schedule);
    secret = { name: secretName, informer };
  }

  function rebuild(): void {
    pending = false;
    const raw = server.get(`${namespace}/${name}`);
    if (!raw) {
      log.warn('McpServer not found; keeping the last configuration');
      return;
    }
    const parsed = McpServerSchema.safeParse(raw);
    if (!parsed.success) {
      log.error(
        { issues: parsed.error.issues.length },
        'McpServer does not validate; keeping the last configuration',
      );
      return;
    }
    followSecret(parsed.data.spec.auth.apiKeys?.secretRef.name);
    // Publish nothing until the Secret's first list is in: a snapshot without its keys would
    // reject every API key until the next change.
    if (secret && !secret.informer.hasSynced()) return;
    const secretObj = secret ? secret.informer.get(`${namespace}/${secret.name}`) : undefined;
    const manifests: Manifests = {
      servers: [parsed.data],
      // compilePolicySet validates raw objects itself (fail closed per policy).
      policies: policies.list() as unknown as AgentPolicy[],
      clusterPolicies: clusterPolicies.list() as unknown as ClusterAgentPolicy[],
      secrets: secretObj ? parseOr(SecretManifestSchema, secretObj) : [],
      configMaps: configMaps.list().flatMap((c) => parseOr(ConfigMapManifestSchema, c)),
    };
    let snapshot: GatewaySnapshot | undefined;
    try {
      const built = buildSnapshots(manifests, revision + 1);
      for (const warning of built.warnings) log.warn(warning);
      snapshot = built.snapshots[0];
    } catch (error) {
      log.error({ err: error }, 'configuration incomplete; keeping the last one');
      return;
    }
    if (!snapshot) return;
    revision += 1;
    current = { ...snapshot, namespaceLabels: ns.get(namespace)?.metadata?.labels ?? {} };
    firstSnapshot();
    for (const listener of listeners) listener(current);
  }

  // Coalesce bursts (a relist emits one event per object) into one rebuild.
  function schedule(): void {
    if (pending) return;
    pending = true;
    queueMicrotask(rebuild);
  }

  const informers = [server, policies, clusterPolicies, ns, configMaps];
  for (const informer of informers) informer.on(schedule);

  return {
    current() {
      if (!current)
        throw new McpworksError(ErrorCode.Internal, 'gateway configuration not loaded yet');
      return current;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    async start() {
      for (const informer of informers) informer.start();
      await Promise.all(informers.map((i) => i.synced()));
      schedule();
      const timeoutMs = options.startTimeoutMs ?? 30_000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        first,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new McpworksError(
                  ErrorCode.Timeout,
                  `no valid configuration for McpServer ${namespace}/${name} after ${timeoutMs} ms`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    },
    async stop() {
      await Promise.all([...informers, ...(secret ? [secret.informer] : [])].map((i) => i.stop()));
    },
  };
}

function parseOr<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } },
  value: unknown,
): T[] {
  const result = schema.safeParse(value);
  return result.success ? [result.data] : [];
}

/**
 * McpServer → gateway and executor workloads. Level-based: gather (caches and a few reads),
 * decide (pure builders and status functions), write only what differs from the live objects.
 * Running it twice in an unchanged world writes nothing the second time.
 */
import { randomBytes } from 'node:crypto';
import {
  McpServerSchema,
  type McpServer,
  type McpServerStatus,
} from '../api/v1alpha1/mcpserver.ts';
import { formatZodIssues } from '../api/manifests.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { KubeClient } from '../k8s/client.ts';
import { isSubset } from '../k8s/compare.ts';
import type { EventRecorder } from '../k8s/events.ts';
import type { Informer } from '../k8s/informer.ts';
import { Resources, type ResourceType } from '../k8s/resources.ts';
import { objectKey, splitKey, type KubeObject } from '../k8s/types.ts';
import {
  desiredGatewayClusterRoleBinding,
  desiredGatewayNetworkPolicy,
  desiredGatewayRole,
  desiredGatewayRoleBinding,
  desiredExecutorNetworkPolicy,
} from './desired-access.ts';
import {
  desiredExecutorDeployment,
  desiredExecutorTokenSecret,
  desiredGatewayDeployment,
  desiredGatewayServiceAccount,
  desiredService,
  hasAllocatedClusterIp,
  referencedSecretKeys,
  type WorkloadOptions,
} from './desired-workloads.ts';
import { Annotations, childNames, endpointUrl } from './names.ts';
import { policyDisplayName, type ParsedPolicy } from './policy-validation.ts';
import { signingKeyProblem } from './signing-key-check.ts';
import { toolSecretProblems } from './tool-secrets-check.ts';
import { ownWriteId, type OwnWrites } from './own-writes.ts';
import { specHash } from './spec-hash.ts';
import { computeServerStatus, Reasons, rolloutState, statusEqual, type Problem } from './status.ts';
import type { ProcessResult } from './workqueue.ts';

export interface ServerCaches {
  servers: Informer<KubeObject>;
  namespaces: Informer<KubeObject>;
  agentPolicies: Informer<KubeObject>;
  clusterPolicies: Informer<KubeObject>;
  deployments: Informer<KubeObject>;
  services: Informer<KubeObject>;
  serviceAccounts: Informer<KubeObject>;
  secrets: Informer<KubeObject>;
  networkPolicies: Informer<KubeObject>;
  roles: Informer<KubeObject>;
  roleBindings: Informer<KubeObject>;
  clusterRoleBindings: Informer<KubeObject>;
}

export interface ServerReconcilerDeps {
  client: KubeClient;
  caches: ServerCaches;
  events: EventRecorder;
  clock: Clock;
  logger: Logger;
  workloads: WorkloadOptions;
  /** Validated policies, memoized by the caller. */
  parsePolicy: (raw: KubeObject) => ParsedPolicy;
  /** When inputs are missing (Secrets and ConfigMaps are not watched), look again after this. */
  recheckMissingInputsMs: number;
  /** A fresh random token, base64; injected so tests can pin it. */
  newToken?: () => string;
  /** Every write is registered here, so that its watch event does not queue a reconcile again. */
  ownWrites: OwnWrites;
  /**
   * Someone else changed an object while this reconcile wrote it (an event that was not our
   * write's echo was held): reconcile `key` once more.
   */
  requeue: (key: string, trigger: string) => void;
  /** After each apply of a child: whether the API server changed anything. */
  onApplied?: (resource: string, changed: boolean) => void;
}

/** The trigger of a reconcile queued because an object changed while this controller wrote it. */
export const CONCURRENT_CHANGE_TRIGGER = 'concurrent-change';

interface Child {
  type: ResourceType;
  cache: Informer<KubeObject>;
  body: KubeObject;
}

export function createServerReconciler(
  deps: ServerReconcilerDeps,
): (key: string) => Promise<ProcessResult> {
  // Secret `data` is base64 of the value the pods get in MCPWORKS_EXECUTOR_TOKEN, which goes into an
  // HTTP header: the value must be printable (base64url of 32 random bytes), not raw bytes.
  const newToken =
    deps.newToken ?? (() => Buffer.from(randomBytes(32).toString('base64url')).toString('base64'));
  const { client, caches } = deps;

  return async function reconcileServer(key: string): Promise<ProcessResult> {
    const raw = caches.servers.get(key);
    if (!raw || raw.metadata?.deletionTimestamp) return deleteClusterScopedChildren(key);
    const log = deps.logger.child({ mcpserver: key, generation: raw.metadata?.generation });

    const parsed = McpServerSchema.safeParse(raw);
    if (!parsed.success) {
      const problems = formatZodIssues(parsed.error.issues).map((message) => ({
        reason: Reasons.InvalidSpec,
        message,
      }));
      await writeStatusIfChanged(raw, invalidStatus(raw, problems));
      deps.events.record(
        raw,
        'Warning',
        Reasons.InvalidSpec,
        problems.map((p) => p.message).join('; '),
      );
      return;
    }
    const server = parsed.data;

    const problems = await findInputProblems(server);
    const token = tokenFor(server);
    const children = desiredChildren(server, token);
    const updated: string[] = [];
    const apply = async (child: Child): Promise<void> => {
      const live = child.cache.get(objectKey(child.body));
      if (live && upToDate(child.body, live)) return;
      try {
        const result = await tracked(key, child.type, objectKey(child.body), () =>
          client.apply<KubeObject>(child.type, child.body),
        );
        child.cache.observe(result);
        const changed =
          !live || result.metadata?.resourceVersion !== live.metadata?.resourceVersion;
        deps.onApplied?.(child.type.plural, changed);
        if (live && changed) updated.push(`${child.type.kind} ${child.body.metadata?.name}`);
      } catch (error) {
        const message = `apply ${child.type.kind} ${objectKey(child.body)}: ${error instanceof Error ? error.message : String(error)}`;
        deps.events.record(raw, 'Warning', Reasons.ApplyFailed, message);
        throw error;
      }
    };
    // What the pods reference or are protected by (token Secret, ServiceAccount, RBAC, the
    // NetworkPolicies: no executor pod runs before its policy exists) goes before the
    // Deployments. The Services go alongside both: nothing waits for them, and a ClusterIP
    // allocation is the API server's slowest write (docs/adr/0003).
    const isWorkload = (c: Child) => c.type === Resources.Deployment;
    const isService = (c: Child) => c.type === Resources.Service;
    const workloads = Promise.all(
      children.filter((c) => !isWorkload(c) && !isService(c)).map(apply),
    ).then(() => Promise.all(children.filter(isWorkload).map(apply)));
    await Promise.all([...children.filter(isService).map(apply), workloads]);
    if (updated.length > 0) {
      // Creation shows in the objects themselves; an Event says when we changed one (drift, rollout).
      log.info({ updated }, 'updated children');
      deps.events.record(raw, 'Normal', 'Updated', `updated ${updated.join(', ')}`);
    }
    for (const problem of problems)
      deps.events.record(raw, 'Warning', problem.reason, problem.message);

    const names = childNames(server);
    const ns = server.metadata.namespace ?? 'default';
    const status = computeServerStatus(
      {
        generation: server.metadata.generation ?? 0,
        problems,
        gateway: rolloutState(
          caches.deployments.get(`${ns}/${names.gateway}`),
          'gateway',
          server.spec.gateway.replicas,
        ),
        executor: rolloutState(
          caches.deployments.get(`${ns}/${names.executor}`),
          'executor',
          server.spec.executor.replicas,
        ),
        toolCount: server.spec.tools.length,
        endpoint: endpointUrl(server),
        policies: selectingPolicies(server),
      },
      raw['status'] as McpServerStatus | undefined,
      deps.clock.now(),
    );
    await writeStatusIfChanged(raw, status);
    return problems.length > 0 ? { requeueAfterMs: deps.recheckMissingInputsMs } : undefined;
  };

  /** A write registered with ownWrites: its echo queues nothing, a concurrent change does. */
  async function tracked<T extends KubeObject>(
    serverKey: string,
    type: ResourceType,
    key: string,
    write: () => Promise<T>,
  ): Promise<T> {
    const id = ownWriteId(type.plural, key);
    deps.ownWrites.begin(id);
    let result: T | undefined;
    try {
      result = await write();
      return result;
    } finally {
      if (deps.ownWrites.end(id, result?.metadata?.resourceVersion)) {
        deps.requeue(serverKey, CONCURRENT_CHANGE_TRIGGER);
      }
    }
  }

  /**
   * A cluster-scoped binding cannot be owned by a namespaced McpServer, so the garbage collector
   * does not remove it: once the server is gone (or going), delete it here. Level-based: a
   * binding event or a restart brings the key back if the deletion was missed. No finalizer, so
   * uninstalling the controller never leaves McpServers stuck in deletion.
   */
  async function deleteClusterScopedChildren(key: string): Promise<ProcessResult> {
    const { namespace, name } = splitKey(key);
    const binding = childNames({ metadata: { name, namespace } }).gatewayClusterBinding;
    if (!caches.clusterRoleBindings.get(binding)) return;
    await client.delete(Resources.ClusterRoleBinding, binding);
    deps.logger.info(
      { mcpserver: key, binding },
      'deleted the ClusterRoleBinding of a removed McpServer',
    );
  }

  async function findInputProblems(server: McpServer): Promise<Problem[]> {
    const ns = server.metadata.namespace ?? 'default';
    const problems: Problem[] = [];
    const apiKeys = server.spec.auth.apiKeys?.secretRef;
    if (apiKeys) {
      const secret = await client.get<KubeObject>(Resources.Secret, apiKeys.name, ns);
      if (!secret) {
        problems.push({
          reason: Reasons.SecretNotFound,
          message: `Secret ${ns}/${apiKeys.name} not found`,
        });
      } else if (
        apiKeys.key !== undefined &&
        !Object.hasOwn((secret['data'] ?? {}) as object, apiKeys.key)
      ) {
        problems.push({
          reason: Reasons.SecretKeyNotFound,
          message: `Secret ${ns}/${apiKeys.name} has no key "${apiKeys.key}"`,
        });
      }
    }
    const signingRef = server.spec.audit.signingKeySecretRef;
    if (signingRef) {
      const problem = signingKeyProblem(
        server,
        await client.get<KubeObject>(Resources.Secret, signingRef.name, ns),
      );
      if (problem) problems.push(problem);
    }
    // secretEnv: the executor mounts these optional; a missing one degrades only its tools.
    const toolSecrets = new Map<string, KubeObject | undefined>();
    for (const name of referencedSecretKeys(server).keys())
      toolSecrets.set(name, await client.get<KubeObject>(Resources.Secret, name, ns));
    problems.push(...toolSecretProblems(server, toolSecrets));
    const configMaps = new Map<string, KubeObject | undefined>();
    for (const tool of server.spec.tools) {
      const ref = tool.codeFrom?.configMapKeyRef;
      if (!ref) continue;
      if (!configMaps.has(ref.name))
        configMaps.set(ref.name, await client.get<KubeObject>(Resources.ConfigMap, ref.name, ns));
      const cm = configMaps.get(ref.name);
      if (!cm) {
        problems.push({
          reason: Reasons.ConfigMapNotFound,
          message: `ConfigMap ${ns}/${ref.name} (code of tool ${tool.name}) not found`,
        });
      } else if (!Object.hasOwn((cm['data'] ?? {}) as object, ref.key)) {
        problems.push({
          reason: Reasons.ConfigMapKeyNotFound,
          message: `ConfigMap ${ns}/${ref.name} has no key "${ref.key}" (code of tool ${tool.name})`,
        });
      }
    }
    return problems;
  }

  /** Keeps the existing token unless the McpServer asks for a rotation with a new annotation value. */
  function tokenFor(server: McpServer): { data: string; generation: string } {
    const ns = server.metadata.namespace ?? 'default';
    const generation = server.metadata.annotations?.[Annotations.rotateToken] ?? '';
    const live = caches.secrets.get(`${ns}/${childNames(server).executorToken}`);
    const existing = (live?.['data'] as Record<string, string> | undefined)?.['token'];
    if (existing && live?.metadata?.annotations?.[Annotations.tokenGeneration] === generation) {
      return { data: existing, generation };
    }
    return { data: newToken(), generation };
  }

  function desiredChildren(
    server: McpServer,
    token: { data: string; generation: string },
  ): Child[] {
    const tokenState = { hash: specHash(token.data) };
    const ns = server.metadata.namespace ?? 'default';
    const names = childNames(server);
    return [
      {
        type: Resources.Secret,
        cache: caches.secrets,
        body: desiredExecutorTokenSecret(server, token.data, token.generation),
      },
      {
        type: Resources.ServiceAccount,
        cache: caches.serviceAccounts,
        body: desiredGatewayServiceAccount(server),
      },
      { type: Resources.Role, cache: caches.roles, body: desiredGatewayRole(server) },
      {
        type: Resources.RoleBinding,
        cache: caches.roleBindings,
        body: desiredGatewayRoleBinding(server),
      },
      {
        type: Resources.ClusterRoleBinding,
        cache: caches.clusterRoleBindings,
        body: desiredGatewayClusterRoleBinding(server),
      },
      {
        type: Resources.NetworkPolicy,
        cache: caches.networkPolicies,
        body: desiredExecutorNetworkPolicy(server, deps.workloads.executorDns),
      },
      {
        type: Resources.NetworkPolicy,
        cache: caches.networkPolicies,
        body: desiredGatewayNetworkPolicy(server),
      },
      {
        type: Resources.Service,
        cache: caches.services,
        body: desiredService(
          server,
          'executor',
          hasAllocatedClusterIp(caches.services.get(`${ns}/${names.executor}`)),
        ),
      },
      { type: Resources.Service, cache: caches.services, body: desiredService(server, 'gateway') },
      {
        type: Resources.Deployment,
        cache: caches.deployments,
        body: desiredExecutorDeployment(server, tokenState, deps.workloads),
      },
      {
        type: Resources.Deployment,
        cache: caches.deployments,
        body: desiredGatewayDeployment(server, tokenState, deps.workloads),
      },
    ];
  }

  function selectingPolicies(server: McpServer): string[] {
    const ns = server.metadata.namespace ?? 'default';
    const namespaceLabels = caches.namespaces.get(ns)?.metadata?.labels;
    const names: string[] = [];
    const candidates = [
      ...caches.agentPolicies.list().filter((p) => p.metadata?.namespace === ns),
      ...caches.clusterPolicies.list(),
    ];
    const ref = {
      namespace: ns,
      name: server.metadata.name,
      labels: server.metadata.labels ?? {},
      namespaceLabels: namespaceLabels ?? {},
    };
    // Invalid policies are listed too: their Deny rules still apply in the gateway (fail closed).
    for (const raw of candidates) {
      const { compiled } = deps.parsePolicy(raw);
      if (compiled.selects(ref)) names.push(policyDisplayName(compiled));
    }
    return names;
  }

  async function writeStatusIfChanged(raw: KubeObject, status: McpServerStatus): Promise<void> {
    if (statusEqual(status, raw['status'])) return;
    const key = objectKey(raw);
    const updated = await tracked(key, Resources.McpServer, key, () =>
      client.applyStatus<KubeObject>(Resources.McpServer, {
        apiVersion: raw.apiVersion,
        kind: raw.kind,
        metadata: { name: raw.metadata?.name, namespace: raw.metadata?.namespace },
        status,
      }),
    );
    caches.servers.observe(updated);
  }

  function invalidStatus(raw: KubeObject, problems: Problem[]): McpServerStatus {
    const existing = raw['status'] as McpServerStatus | undefined;
    const noRollout = { complete: false, available: 0, desired: 0 };
    return computeServerStatus(
      {
        generation: raw.metadata?.generation ?? 0,
        problems,
        gateway: { name: 'gateway', ...noRollout },
        executor: { name: 'executor', ...noRollout },
        toolCount: 0,
        endpoint: endpointUrl({
          metadata: { name: raw.metadata?.name ?? '', namespace: raw.metadata?.namespace },
        }),
        policies: [],
      },
      existing,
      deps.clock.now(),
    );
  }
}

/**
 * Desired fields already present in the live object? Metadata maps and owner references may
 * carry entries of others (kubectl annotations, a second owner): those are not drift.
 */
export function upToDate(desired: KubeObject, live: KubeObject): boolean {
  const { metadata: desiredMeta, ...desiredRest } = desired;
  const { metadata: liveMeta, ...liveRest } = live;
  if (!isSubset(desiredRest, liveRest)) return false;
  if (!isSubset(desiredMeta?.labels ?? {}, liveMeta?.labels ?? {})) return false;
  if (!isSubset(desiredMeta?.annotations ?? {}, liveMeta?.annotations ?? {})) return false;
  const liveOwners = liveMeta?.ownerReferences ?? [];
  return (desiredMeta?.ownerReferences ?? []).every((o) => liveOwners.some((l) => isSubset(o, l)));
}

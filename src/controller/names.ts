import type { McpServer } from '../api/v1alpha1/mcpserver.ts';
import type { OwnerReference } from '../k8s/types.ts';

export const MANAGED_BY = 'mcpworks-controller';
/** Every object the controller creates carries this label; its caches select on it. */
export const MANAGED_BY_SELECTOR = `app.kubernetes.io/managed-by=${MANAGED_BY}`;

export const Annotations = {
  /** Hash of everything a pod reads at start; a change rolls the pods. */
  specHash: 'mcpworks.io/spec-hash',
  /** Set on an McpServer to a new value to rotate the gateway→executor token. */
  rotateToken: 'mcpworks.io/rotate-executor-token',
  /** On the token Secret: the rotateToken value it was generated for. */
  tokenGeneration: 'mcpworks.io/token-generation',
} as const;

export const Labels = {
  server: 'mcpworks.io/server',
  /** On cluster-scoped children (no owner reference): the namespace of their McpServer. */
  serverNamespace: 'mcpworks.io/server-namespace',
} as const;

/** The ClusterRole (config/rbac) every gateway is bound to for its cluster-scoped reads. */
export const GATEWAY_CLUSTER_ROLE = 'mcpworks-gateway';

export const Ports = { gateway: 8080, executor: 8081 } as const;

export type Component = 'gateway' | 'executor';

export function childNames(server: Pick<McpServer, 'metadata'>) {
  const { name, namespace } = server.metadata;
  return {
    gateway: `${name}-gateway`,
    executor: `${name}-executor`,
    executorToken: `${name}-executor-token`,
    gatewayClusterBinding: `mcpworks-gateway.${namespace ?? 'default'}.${name}`,
  };
}

export function componentLabels(
  server: Pick<McpServer, 'metadata'>,
  component: Component,
): Record<string, string> {
  return {
    ...selectorLabels(server, component),
    'app.kubernetes.io/part-of': 'mcpworks',
    'app.kubernetes.io/managed-by': MANAGED_BY,
  };
}

/** The immutable subset used in Deployment selectors and NetworkPolicy peers. */
export function selectorLabels(
  server: Pick<McpServer, 'metadata'>,
  component: Component,
): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'mcpworks',
    'app.kubernetes.io/instance': server.metadata.name,
    'app.kubernetes.io/component': component,
  };
}

export function ownerReference(server: McpServer): OwnerReference {
  return {
    apiVersion: server.apiVersion,
    kind: server.kind,
    name: server.metadata.name,
    uid: server.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The metadata every namespaced child object carries: its name, labels and owner reference. */
export function childMetadata(
  server: McpServer,
  name: string,
  component: Component,
  extra: Record<string, unknown> = {},
) {
  return {
    name,
    namespace: server.metadata.namespace,
    labels: componentLabels(server, component),
    ownerReferences: [ownerReference(server)],
    ...extra,
  };
}

export function endpointUrl(server: Pick<McpServer, 'metadata'>): string {
  const { gateway } = childNames(server);
  return `http://${gateway}.${server.metadata.namespace ?? 'default'}.svc:${Ports.gateway}/mcp`;
}

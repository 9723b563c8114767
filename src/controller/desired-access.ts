/**
 * Pure builders of who may talk to and read what: NetworkPolicies around the two workloads and
 * the read-only RBAC the gateway needs to watch its configuration (ADR 0001).
 */
import type { McpServer } from '../api/v1alpha1/mcpserver.ts';
import type { KubeObject } from '../k8s/types.ts';
import { executorEgressRules, type DnsPeer } from './executor-egress.ts';
import {
  childMetadata,
  childNames,
  GATEWAY_CLUSTER_ROLE,
  MANAGED_BY,
  Ports,
  selectorLabels,
  Labels,
} from './names.ts';

/**
 * Executor: ingress only from its own gateway pods on its port. Egress: none at all, unless a
 * tool declares `egress`; then DNS to the cluster DNS pods and the declared ports to public
 * addresses only (executor-egress.ts), what the executor's egress proxy enforces per tool.
 */
export function desiredExecutorNetworkPolicy(server: McpServer, dns: DnsPeer): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMetadata(server, childNames(server).executor, 'executor'),
    spec: {
      podSelector: { matchLabels: selectorLabels(server, 'executor') },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: selectorLabels(server, 'gateway') } }],
          ports: [{ protocol: 'TCP', port: Ports.executor }],
        },
      ],
      egress: executorEgressRules(server, dns),
    },
  };
}

/** Gateway: ingress on its port from anywhere (it authenticates every request itself). */
export function desiredGatewayNetworkPolicy(server: McpServer): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMetadata(server, childNames(server).gateway, 'gateway'),
    spec: {
      podSelector: { matchLabels: selectorLabels(server, 'gateway') },
      policyTypes: ['Ingress'],
      ingress: [{ ports: [{ protocol: 'TCP', port: Ports.gateway }] }],
    },
  };
}

/**
 * Read-only access to what the gateway watches in its namespace, plus creating Events. The API-key Secret is named
 * (resourceNames): a gateway can never read another Secret.
 */
export function desiredGatewayRole(server: McpServer): KubeObject {
  const secretRef = server.spec.auth.apiKeys?.secretRef.name;
  const rules: Record<string, unknown>[] = [
    {
      apiGroups: ['mcpworks.io'],
      resources: ['mcpservers', 'agentpolicies'],
      verbs: ['get', 'list', 'watch'],
    },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
    // Denials and sandbox failures as Events on the McpServer / AgentPolicy (aggregated and
    // rate-limited in src/gateway/telemetry/events.ts).
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ];
  if (secretRef) {
    rules.push({
      apiGroups: [''],
      resources: ['secrets'],
      resourceNames: [secretRef],
      verbs: ['get', 'list', 'watch'],
    });
  }
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: childMetadata(server, childNames(server).gateway, 'gateway'),
    rules,
  };
}

export function desiredGatewayRoleBinding(server: McpServer): KubeObject {
  const name = childNames(server).gateway;
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: childMetadata(server, name, 'gateway'),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace: server.metadata.namespace }],
  };
}

/**
 * ClusterAgentPolicies and namespace labels are cluster-scoped: one binding per gateway to the
 * shared read-only ClusterRole. A cluster-scoped object cannot be owned by a namespaced one: the
 * reconciler deletes it once its McpServer is gone.
 */
export function desiredGatewayClusterRoleBinding(server: McpServer): KubeObject {
  const names = childNames(server);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: {
      name: names.gatewayClusterBinding,
      labels: {
        'app.kubernetes.io/managed-by': MANAGED_BY,
        'app.kubernetes.io/part-of': 'mcpworks',
        'app.kubernetes.io/component': 'gateway',
        [Labels.server]: server.metadata.name,
        [Labels.serverNamespace]: server.metadata.namespace ?? 'default',
      },
    },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: GATEWAY_CLUSTER_ROLE,
    },
    subjects: [
      { kind: 'ServiceAccount', name: names.gateway, namespace: server.metadata.namespace },
    ],
  };
}

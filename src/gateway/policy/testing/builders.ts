// Small builders for policy tests and benchmarks.
import type {
  AgentPolicy,
  ClusterAgentPolicy,
  EgressDeny,
  PolicyRule,
  PolicySubject,
} from '../../../api/v1alpha1/agentpolicy.ts';
import type { Principal, PolicyRequest, ServerRef } from '../types.ts';

export function rule(
  effect: 'Allow' | 'Deny',
  subjects: PolicySubject[],
  tools: string[],
  extra: Partial<PolicyRule> = {},
): PolicyRule {
  return {
    effect,
    subjects,
    tools,
    reason: `${effect.toLowerCase()} ${tools.join(',')}`,
    ...extra,
  };
}

export function agentPolicy(
  name: string,
  rules: PolicyRule[],
  options: {
    namespace?: string;
    servers?: AgentPolicy['spec']['servers'];
    auditOnly?: boolean;
  } = {},
): AgentPolicy {
  return {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'AgentPolicy',
    metadata: { name, namespace: options.namespace ?? 'team' },
    spec: {
      servers: options.servers ?? { selector: {} },
      auditOnly: options.auditOnly ?? false,
      rules,
    },
  };
}

export function clusterPolicy(
  name: string,
  rules: PolicyRule[],
  options: {
    servers?: ClusterAgentPolicy['spec']['servers'];
    namespaceSelector?: ClusterAgentPolicy['spec']['namespaceSelector'];
    auditOnly?: boolean;
    egressDeny?: EgressDeny[];
  } = {},
): ClusterAgentPolicy {
  return {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'ClusterAgentPolicy',
    metadata: { name },
    spec: {
      servers: options.servers ?? { selector: {} },
      namespaceSelector: options.namespaceSelector ?? {},
      auditOnly: options.auditOnly ?? false,
      rules,
      ...(options.egressDeny === undefined ? {} : { egressDeny: options.egressDeny }),
    },
  };
}

/** A ClusterAgentPolicy with only egress guardrails. */
export function egressGuardrail(
  name: string,
  egressDeny: EgressDeny[],
  options: Omit<Parameters<typeof clusterPolicy>[2], 'egressDeny'> = {},
): ClusterAgentPolicy {
  const { rules: _rules, ...spec } = clusterPolicy(name, [], { ...options, egressDeny }).spec;
  return {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'ClusterAgentPolicy',
    metadata: { name },
    spec,
  };
}

export const agent = (name: string, groups: string[] = []): Principal => ({
  kind: 'Agent',
  name,
  groups,
  authMethod: 'api-key',
});

export const serviceAccount = (
  namespace: string,
  name: string,
  groups: string[] = [],
): Principal => ({
  kind: 'ServiceAccount',
  name: `system:serviceaccount:${namespace}:${name}`,
  namespace,
  serviceAccountName: name,
  groups,
  authMethod: 'service-account',
});

export const anonymous = (groups: string[] = []): Principal => ({
  kind: 'Anonymous',
  name: 'anonymous',
  groups,
  authMethod: 'anonymous',
});

export function server(
  name = 'files',
  namespace = 'team',
  labels: Record<string, string> = {},
  namespaceLabels: Record<string, string> = {},
): ServerRef {
  return { namespace, name, labels, namespaceLabels };
}

export function call(
  principal: Principal,
  tool: string,
  args: Record<string, unknown> = {},
  target: ServerRef = server(),
): PolicyRequest {
  return { server: target, principal, method: 'tools/call', tool, arguments: args };
}

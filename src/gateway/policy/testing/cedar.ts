// Translates condition-free policy sets (as generated in arbitraries.ts) to Cedar, for the
// differential test and the benchmark. Cedar's forbid-overrides-permit and default deny are our
// semantics; audit-only policies are left out because they never enforce.
import type {
  AgentPolicy,
  ClusterAgentPolicy,
  PolicyRule,
  PolicySubject,
} from '../../../api/v1alpha1/agentpolicy.ts';
import type { LabelSelector } from '../../../api/v1alpha1/common.ts';
import type { PolicyRequest } from '../types.ts';

/**
 * `scoped` writes one Cedar policy per subject with the principal constraint in the policy scope
 * (`principal == Agent::"a"`, `principal in Group::"g"`, `principal is ServiceAccount`), the
 * idiomatic Cedar form; otherwise one policy per rule with every constraint in `when`.
 */
export function toCedar(
  set: { agentPolicies: AgentPolicy[]; clusterPolicies: ClusterAgentPolicy[] },
  options: { scoped?: boolean } = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  const emit = (rule: PolicyRule, selection: string, namespace: string | undefined) => {
    const head = rule.effect === 'Allow' ? 'permit' : 'forbid';
    const tools = or(rule.tools.map(cedarTool));
    if (options.scoped !== true) {
      const subjects = or(rule.subjects.map((subject) => cedarSubject(subject, namespace)));
      out[`p${n++}`] =
        `${head} (principal, action == Action::"call", resource) when { ${subjects} && ${tools} && ${selection} };`;
      return;
    }
    for (const subject of rule.subjects) {
      const { scope, when } = scopedSubject(subject, namespace);
      out[`p${n++}`] =
        `${head} (${scope}, action == Action::"call", resource) when { ${when} && ${tools} && ${selection} };`;
    }
  };
  for (const policy of set.agentPolicies) {
    if (policy.spec.auditOnly) continue;
    const namespace = policy.metadata.namespace ?? 'default';
    const selection = `(resource.namespace == ${str(namespace)} && ${cedarServers(policy.spec.servers)})`;
    for (const rule of policy.spec.rules) emit(rule, selection, namespace);
  }
  for (const policy of set.clusterPolicies) {
    if (policy.spec.auditOnly) continue;
    const selection = `(${cedarSelector(policy.spec.namespaceSelector, 'resource.nsLabels')} && ${cedarServers(policy.spec.servers)})`;
    for (const rule of policy.spec.rules ?? []) emit(rule, selection, undefined);
  }
  return out;
}

/** The Cedar request and entities for one of our requests. */
export function cedarRequest(request: PolicyRequest) {
  const { principal, server } = request;
  const groups =
    principal.kind === 'Anonymous' ? [] : principal.groups.map((id) => ({ type: 'Group', id }));
  let uid: { type: string; id: string };
  let attrs: Record<string, string> = {};
  if (principal.kind === 'Agent') uid = { type: 'Agent', id: principal.name };
  else if (principal.kind === 'Anonymous') uid = { type: 'Anonymous', id: 'anonymous' };
  else {
    uid = { type: 'ServiceAccount', id: `${principal.namespace}:${principal.serviceAccountName}` };
    attrs = { namespace: principal.namespace ?? '', name: principal.serviceAccountName ?? '' };
  }
  const resource = { type: 'Tool', id: `${server.namespace}/${server.name}/${request.tool ?? ''}` };
  return {
    principal: uid,
    action: { type: 'Action', id: 'call' },
    resource,
    context: {},
    entities: [
      { uid, attrs, parents: groups },
      ...groups.map((g) => ({ uid: g, attrs: {}, parents: [] })),
      {
        uid: resource,
        attrs: {
          name: request.tool ?? '',
          server: server.name,
          namespace: server.namespace,
          labels: server.labels,
          nsLabels: server.namespaceLabels,
        },
        parents: [],
      },
    ],
  };
}

function cedarSubject(subject: PolicySubject, namespace: string | undefined): string {
  const name = subject.name ?? '*';
  switch (subject.kind) {
    case 'Agent':
      return name === '*' ? 'principal is Agent' : `principal == Agent::${str(name)}`;
    case 'Group':
      return name === '*'
        ? '(principal is Agent || principal is ServiceAccount)'
        : `principal in Group::${str(name)}`;
    case 'ServiceAccount': {
      const ns = subject.namespace ?? namespace;
      if (ns === undefined) {
        return name === '*'
          ? 'principal is ServiceAccount'
          : `(principal is ServiceAccount && principal.name == ${str(name)})`;
      }
      return name === '*'
        ? `(principal is ServiceAccount && principal.namespace == ${str(ns)})`
        : `principal == ServiceAccount::${str(`${ns}:${name}`)}`;
    }
    case 'Anonymous':
      return 'principal is Anonymous';
  }
}

function scopedSubject(
  subject: PolicySubject,
  namespace: string | undefined,
): { scope: string; when: string } {
  const name = subject.name ?? '*';
  switch (subject.kind) {
    case 'Agent':
      return {
        scope: name === '*' ? 'principal is Agent' : `principal == Agent::${str(name)}`,
        when: 'true',
      };
    case 'Group':
      return name === '*'
        ? { scope: 'principal', when: cedarSubject(subject, namespace) }
        : { scope: `principal in Group::${str(name)}`, when: 'true' };
    case 'ServiceAccount': {
      const ns = subject.namespace ?? namespace;
      if (ns !== undefined && name !== '*')
        return { scope: `principal == ServiceAccount::${str(`${ns}:${name}`)}`, when: 'true' };
      return { scope: 'principal is ServiceAccount', when: cedarSubject(subject, namespace) };
    }
    case 'Anonymous':
      return { scope: 'principal is Anonymous', when: 'true' };
  }
}

function cedarTool(pattern: string): string {
  if (pattern === '*') return 'true';
  if (!pattern.includes('*')) return `resource.name == ${str(pattern)}`;
  if (/[?[\]{}]/.test(pattern)) throw new Error(`Cedar cannot express the glob ${pattern}`);
  return `resource.name like ${str(pattern)}`;
}

function cedarServers(servers: AgentPolicy['spec']['servers']): string {
  const parts: string[] = [];
  if (servers.names !== undefined)
    parts.push(or(servers.names.map((name) => `resource.server == ${str(name)}`)));
  if (servers.selector !== undefined)
    parts.push(cedarSelector(servers.selector, 'resource.labels'));
  return parts.length === 0 ? 'true' : or(parts);
}

function cedarSelector(selector: LabelSelector, record: string): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    parts.push(`(${record} has ${str(key)} && ${record}[${str(key)}] == ${str(value)})`);
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = `${record} has ${str(key)}`;
    const oneOf = or(values.map((v) => `${record}[${str(key)}] == ${str(v)}`));
    if (operator === 'In') parts.push(`(${has} && ${oneOf})`);
    else if (operator === 'NotIn') parts.push(`(!(${has}) || !(${oneOf}))`);
    else if (operator === 'Exists') parts.push(`(${has})`);
    else parts.push(`!(${has})`);
  }
  return parts.length === 0 ? 'true' : `(${parts.join(' && ')})`;
}

function or(parts: string[]): string {
  return parts.length === 1 ? (parts[0] as string) : `(${parts.join(' || ')})`;
}

function str(text: string): string {
  return JSON.stringify(text);
}

// fast-check generators of condition-free policy sets and requests over small name pools, so
// that generated rules and requests collide often (a random string would never match a rule).
import fc from 'fast-check';
import type {
  AgentPolicy,
  ClusterAgentPolicy,
  PolicyRule,
  PolicySubject,
} from '../../../api/v1alpha1/agentpolicy.ts';
import type { LabelSelector } from '../../../api/v1alpha1/common.ts';
import type { PolicyRequest, Principal, ServerRef } from '../types.ts';

export const NAMESPACES = ['team', 'ops'] as const;
export const SERVERS = ['files', 'db', 'web'] as const;
export const AGENTS = ['alice', 'bob', 'carol'] as const;
export const GROUPS = ['dev', 'ops', 'sec'] as const;
export const ACCOUNTS = ['ci', 'bot'] as const;
export const TOOLS = [
  'read_file',
  'read_dir',
  'write_file',
  'rm',
  'shell',
  'admin_reset',
  'list',
] as const;
/** Tool patterns Cedar's `like` can express: literals and `*` globs. */
export const TOOL_PATTERNS = [...TOOLS, '*', 'read_*', '*_file', '*e*', 'admin*', 'x*'] as const;

const LABELS = { tier: ['low', 'high'], env: ['dev', 'prod'] } as const;

export const subjectArb: fc.Arbitrary<PolicySubject> = fc.oneof(
  fc.record({ kind: fc.constant('Agent' as const), name: fc.constantFrom(...AGENTS, '*') }),
  fc.record({ kind: fc.constant('Group' as const), name: fc.constantFrom(...GROUPS, '*') }),
  fc.record(
    {
      kind: fc.constant('ServiceAccount' as const),
      name: fc.constantFrom(...ACCOUNTS, '*'),
      namespace: fc.constantFrom(...NAMESPACES),
    },
    { requiredKeys: ['kind', 'name'] },
  ),
  fc.constant({ kind: 'Anonymous' as const }),
);

/**
 * Conditions for the property tests: some hold, some do not, some error on the generated
 * arguments (a missing key), which must count as a match for Deny and no match for Allow.
 */
export const CONDITIONS = [
  'has(args.path) && args.path.startsWith("/etc")',
  'args.path == "/tmp/x"',
  'args.n > 3',
  'tool.startsWith("read")',
  '"dev" in subject.groups',
] as const;

export function ruleArb(
  effect?: 'Allow' | 'Deny',
  withConditions = false,
): fc.Arbitrary<PolicyRule> {
  return fc
    .record({
      effect:
        effect === undefined
          ? fc.constantFrom('Allow' as const, 'Deny' as const)
          : fc.constant(effect),
      subjects: fc.array(subjectArb, { minLength: 1, maxLength: 3 }),
      tools: fc.uniqueArray(fc.constantFrom(...TOOL_PATTERNS), { minLength: 1, maxLength: 3 }),
      reason: fc.constantFrom('r1', 'r2', 'because'),
      conditions: withConditions
        ? fc.uniqueArray(fc.constantFrom(...CONDITIONS), { maxLength: 2 })
        : fc.constant([] as string[]),
    })
    .map(({ conditions, ...rule }) => (conditions.length === 0 ? rule : { ...rule, conditions }));
}

const labelsArb = fc.record(
  { tier: fc.constantFrom(...LABELS.tier), env: fc.constantFrom(...LABELS.env) },
  { requiredKeys: [] },
) as fc.Arbitrary<Record<string, string>>;

export const selectorArb: fc.Arbitrary<LabelSelector> = fc.oneof(
  fc.constant({}),
  labelsArb.map((matchLabels) => ({ matchLabels })),
  fc
    .record({
      key: fc.constantFrom('tier', 'env'),
      operator: fc.constantFrom(
        'In' as const,
        'NotIn' as const,
        'Exists' as const,
        'DoesNotExist' as const,
      ),
      values: fc.uniqueArray(fc.constantFrom('low', 'high', 'dev', 'prod'), {
        minLength: 1,
        maxLength: 2,
      }),
    })
    .map(({ key, operator, values }) => ({
      matchExpressions: [
        operator === 'In' || operator === 'NotIn' ? { key, operator, values } : { key, operator },
      ],
    })),
);

const serversArb: fc.Arbitrary<AgentPolicy['spec']['servers']> = fc.oneof(
  fc
    .uniqueArray(fc.constantFrom(...SERVERS), { minLength: 1, maxLength: 2 })
    .map((names) => ({ names })),
  selectorArb.map((selector) => ({ selector })),
  fc
    .tuple(fc.uniqueArray(fc.constantFrom(...SERVERS), { minLength: 1, maxLength: 2 }), selectorArb)
    .map(([names, selector]) => ({ names, selector })),
);

/** About one policy in ten is audit-only. */
const auditOnlyArb = fc.integer({ min: 0, max: 9 }).map((n) => n === 0);

export function agentPolicyArb(
  name: fc.Arbitrary<string>,
  effect?: 'Allow' | 'Deny',
  withConditions = false,
): fc.Arbitrary<AgentPolicy> {
  return fc
    .record({
      name,
      namespace: fc.constantFrom(...NAMESPACES),
      servers: serversArb,
      auditOnly: auditOnlyArb,
      rules: fc.array(ruleArb(effect, withConditions), { minLength: 1, maxLength: 3 }),
    })
    .map(({ name, namespace, servers, auditOnly, rules }) => ({
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'AgentPolicy',
      metadata: { name, namespace },
      spec: { servers, auditOnly, rules },
    }));
}

export function clusterPolicyArb(
  name: fc.Arbitrary<string>,
  effect?: 'Allow' | 'Deny',
  withConditions = false,
): fc.Arbitrary<ClusterAgentPolicy> {
  return fc
    .record({
      name,
      servers: serversArb,
      namespaceSelector: selectorArb,
      auditOnly: auditOnlyArb,
      rules: fc.array(ruleArb(effect, withConditions), { minLength: 1, maxLength: 3 }),
    })
    .map(({ name, servers, namespaceSelector, auditOnly, rules }) => ({
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'ClusterAgentPolicy',
      metadata: { name },
      spec: { servers, namespaceSelector, auditOnly, rules },
    }));
}

export interface GeneratedSet {
  agentPolicies: AgentPolicy[];
  clusterPolicies: ClusterAgentPolicy[];
}

export function policySetArbWith(withConditions: boolean): fc.Arbitrary<GeneratedSet> {
  return fc.record({
    agentPolicies: fc.uniqueArray(
      agentPolicyArb(
        fc.constantFrom('p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'),
        undefined,
        withConditions,
      ),
      { maxLength: 6, selector: (p) => `${p.metadata.namespace}/${p.metadata.name}` },
    ),
    clusterPolicies: fc.uniqueArray(
      clusterPolicyArb(fc.constantFrom('c0', 'c1', 'c2', 'c3'), undefined, withConditions),
      {
        maxLength: 3,
        selector: (p) => p.metadata.name,
      },
    ),
  });
}

/** Condition-free sets: what Cedar can decide too. */
export const policySetArb = policySetArbWith(false);
/** Sets whose rules may carry CEL conditions (some of which error on some requests). */
export const conditionalPolicySetArb = policySetArbWith(true);

export const principalArb: fc.Arbitrary<Principal> = fc.oneof(
  fc.record({
    kind: fc.constant('Agent' as const),
    name: fc.constantFrom(...AGENTS, 'dave'),
    groups: fc.uniqueArray(fc.constantFrom(...GROUPS, 'other'), { maxLength: 2 }),
    authMethod: fc.constantFrom('api-key' as const, 'oidc' as const),
  }),
  fc
    .record({
      namespace: fc.constantFrom(...NAMESPACES, 'elsewhere'),
      account: fc.constantFrom(...ACCOUNTS, 'other'),
      groups: fc.uniqueArray(fc.constantFrom(...GROUPS), { maxLength: 2 }),
    })
    .map(({ namespace, account, groups }) => ({
      kind: 'ServiceAccount' as const,
      name: `system:serviceaccount:${namespace}:${account}`,
      namespace,
      serviceAccountName: account,
      groups,
      authMethod: 'service-account' as const,
    })),
  // Anonymous callers sometimes claim groups: no Group subject may ever match them.
  fc.uniqueArray(fc.constantFrom(...GROUPS), { maxLength: 1 }).map((groups) => ({
    kind: 'Anonymous' as const,
    name: 'anonymous',
    groups,
    authMethod: 'anonymous' as const,
  })),
);

export const serverArb: fc.Arbitrary<ServerRef> = fc.record({
  namespace: fc.constantFrom(...NAMESPACES, 'other'),
  name: fc.constantFrom(...SERVERS),
  labels: labelsArb,
  namespaceLabels: labelsArb,
});

export const requestArb: fc.Arbitrary<PolicyRequest> = fc.record({
  server: serverArb,
  principal: principalArb,
  method: fc.constant('tools/call'),
  tool: fc.constantFrom(...TOOLS, 'xylophone', 'read_'),
  arguments: fc.constantFrom<Record<string, unknown>>(
    {},
    { path: '/etc/passwd' },
    { path: '/tmp/x' },
    { n: 5 },
    { n: 1, path: '/etc/x' },
  ),
});

/** A Deny that matches exactly this request, in a ClusterAgentPolicy of its own. */
export function denyFor(request: PolicyRequest, name = 'zz-deny-for'): ClusterAgentPolicy {
  return {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'ClusterAgentPolicy',
    metadata: { name },
    spec: {
      servers: { names: [request.server.name] },
      namespaceSelector: {},
      auditOnly: false,
      rules: [
        {
          effect: 'Deny',
          subjects: [subjectFor(request.principal)],
          tools: [request.tool ?? '*'],
          reason: 'deny for',
        },
      ],
    },
  };
}

function subjectFor(principal: Principal): PolicySubject {
  switch (principal.kind) {
    case 'Agent':
      return { kind: 'Agent', name: principal.name };
    case 'ServiceAccount':
      return {
        kind: 'ServiceAccount',
        name: principal.serviceAccountName ?? '*',
        namespace: principal.namespace ?? 'team',
      };
    case 'Anonymous':
      return { kind: 'Anonymous' };
  }
}

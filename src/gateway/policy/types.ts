/**
 * The contract between the gateway (which authenticates and asks) and the policy engine (which
 * decides). Pure data: no I/O, no clock.
 */

/** How a principal proved who it is. */
export const AuthMethod = {
  ApiKey: 'api-key',
  Oidc: 'oidc',
  ServiceAccount: 'service-account',
  Anonymous: 'anonymous',
} as const;
export type AuthMethod = (typeof AuthMethod)[keyof typeof AuthMethod];

export const PrincipalKind = {
  Agent: 'Agent',
  ServiceAccount: 'ServiceAccount',
  Anonymous: 'Anonymous',
} as const;
export type PrincipalKind = (typeof PrincipalKind)[keyof typeof PrincipalKind];

/** An authenticated (or explicitly anonymous) caller. */
export interface Principal {
  kind: PrincipalKind;
  /** Agent id; for ServiceAccounts the full `system:serviceaccount:<ns>:<name>`; `anonymous`. */
  name: string;
  /** ServiceAccounts only: the account's namespace. */
  namespace?: string;
  /** ServiceAccounts only: the account's own name. */
  serviceAccountName?: string;
  /** Groups from the credential (API key entry, OIDC groups claim, SA token). Never matched for Anonymous. */
  groups: string[];
  authMethod: AuthMethod;
}

/** The McpServer a request is for, with the labels policies select on. */
export interface ServerRef {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  namespaceLabels: Record<string, string>;
}

export interface PolicyRequest {
  server: ServerRef;
  principal: Principal;
  /** JSON-RPC method; only policy-governed methods (see `isPolicyGoverned`) are decided by rules. */
  method: string;
  /** tools/call only. */
  tool?: string;
  /** tools/call only: the call's arguments, the input of rule conditions. */
  arguments?: Record<string, unknown>;
}

export const Effect = { Allow: 'Allow', Deny: 'Deny' } as const;
export type Effect = (typeof Effect)[keyof typeof Effect];

/** The rule that decided: which policy object, and the index into its `spec.rules`. */
export interface DecidingRule {
  kind: 'AgentPolicy' | 'ClusterAgentPolicy';
  namespace?: string;
  name: string;
  index: number;
}

/** The would-be effect of one audit-only policy on this request; never enforced. */
export interface AuditFinding {
  /** `AgentPolicy/ns/name` or `ClusterAgentPolicy/name`. */
  policy: string;
  effect: Effect;
  rule: DecidingRule;
  reason: string;
  /** True when enforcing this policy would have changed the real decision. */
  changesDecision: boolean;
}

export interface Decision {
  effect: Effect;
  reason: string;
  /** Absent for default deny and for gateway-level decisions. */
  rule?: DecidingRule;
  /** Policies whose rules were considered for this request: `AgentPolicy/ns/name`, `ClusterAgentPolicy/name`, sorted. */
  policies: string[];
  /** Would-be effects of audit-only policies that matched. */
  audit: AuditFinding[];
}

/** A policy (or part of one) that could not be compiled; see engine.ts for how it fails closed. */
export interface PolicyCompileError {
  /** `AgentPolicy/ns/name` or `ClusterAgentPolicy/name`. */
  policy: string;
  /** Field path in the object, e.g. `spec.rules[2].conditions[0]`. */
  path: string;
  message: string;
}

/** `AgentPolicy/ns/name` or `ClusterAgentPolicy/name`. */
export function policyId(rule: Pick<DecidingRule, 'kind' | 'namespace' | 'name'>): string {
  return rule.kind === 'AgentPolicy'
    ? `AgentPolicy/${rule.namespace ?? ''}/${rule.name}`
    : `ClusterAgentPolicy/${rule.name}`;
}

/**
 * Every cross-field rule of the API, as data. Each is enforced twice from this one entry: by the
 * API server (the CEL `rule`, emitted into the CRD as `x-kubernetes-validations`) and by zod at
 * run time (`check`), so `kubectl apply`, the controller and `mcpworks serve` agree.
 */
import type { ControllerOnlyRule, CrossFieldRule } from './rules.ts';
import { has, isRecord } from './rules.ts';

const AUTH_METHODS = ['apiKeys', 'oidc', 'serviceAccountTokens'] as const;

export const TOOL_RULES: readonly CrossFieldRule[] = [
  {
    id: 'tool-code-xor-codeFrom',
    path: 'McpServer spec.tools[*]',
    rule: 'has(self.code) != has(self.codeFrom)',
    message: 'exactly one of code and codeFrom must be set',
    fieldPath: '.code',
    reason: 'FieldValueRequired',
    check: (tool) => has(tool, 'code') !== has(tool, 'codeFrom'),
  },
  {
    id: 'tool-egress-needs-python-or-node',
    path: 'McpServer spec.tools[*]',
    rule: "!has(self.egress) || size(self.egress) == 0 || self.runtime != 'bash'",
    message:
      'egress needs runtime python or node (bash has no HTTP client that can use the egress proxy)',
    fieldPath: '.egress',
    reason: 'FieldValueForbidden',
    check: (tool) => {
      const egress = field(tool, 'egress');
      return !Array.isArray(egress) || egress.length === 0 || field(tool, 'runtime') !== 'bash';
    },
  },
  {
    id: 'tool-secretenv-not-in-env',
    path: 'McpServer spec.tools[*]',
    rule: '!has(self.env) || !has(self.secretEnv) || self.secretEnv.all(s, !self.env.exists(e, e.name == s.name))',
    message: 'a variable cannot be in both env and secretEnv',
    fieldPath: '.secretEnv',
    // Not FieldValueDuplicate: the API server then answers a bare "Duplicate value" and drops
    // the message (crds-cases.ts checks what a user reads).
    reason: 'FieldValueForbidden',
    check: (tool) => {
      const env = field(tool, 'env');
      const secretEnv = field(tool, 'secretEnv');
      if (!Array.isArray(env) || !Array.isArray(secretEnv)) return true;
      const names = new Set(env.map((entry) => field(entry, 'name')));
      return secretEnv.every((entry) => !names.has(field(entry, 'name')));
    },
  },
];

/**
 * Environment variables the executor sets itself: the egress proxy's address and the CA bundle a
 * tool with egress trusts (docs/tools.md). A tool cannot set or override them.
 */
export const RESERVED_ENV_NAMES = [
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'ALL_PROXY',
  'all_proxy',
  'NO_PROXY',
  'no_proxy',
  'NODE_USE_ENV_PROXY',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
] as const;
const RESERVED_ENV: readonly string[] = RESERVED_ENV_NAMES;

export const ENV_RESERVED_RULES: readonly CrossFieldRule[] = [
  {
    id: 'env-name-not-reserved',
    path: 'McpServer spec.tools[*].env[*], spec.tools[*].secretEnv[*]',
    rule: `!(self.name in [${RESERVED_ENV.map((n) => `'${n}'`).join(', ')}])`,
    message: `is set by the executor (egress proxy and CA bundle) and cannot be set by a tool: ${RESERVED_ENV.join(', ')}`,
    fieldPath: '.name',
    reason: 'FieldValueForbidden',
    check: (entry) => {
      const name = field(entry, 'name');
      return typeof name !== 'string' || !RESERVED_ENV.includes(name);
    },
  },
];

export const AUTH_RULES: readonly CrossFieldRule[] = [
  {
    id: 'auth-method-required',
    path: 'McpServer spec.auth',
    rule: '(has(self.anonymous) && self.anonymous.enabled) || has(self.apiKeys) || has(self.oidc) || has(self.serviceAccountTokens)',
    message:
      'at least one of apiKeys, oidc or serviceAccountTokens is required unless anonymous.enabled is true',
    reason: 'FieldValueRequired',
    check: (auth) =>
      (isRecord(auth) && isRecord(auth.anonymous) && auth.anonymous.enabled === true) ||
      AUTH_METHODS.some((method) => has(auth, method)),
  },
];

export const SUBJECT_RULES: readonly CrossFieldRule[] = [
  {
    id: 'subject-name-required',
    path: 'spec.rules[*].subjects[*]',
    rule: "self.kind == 'Anonymous' || has(self.name)",
    message: 'name is required for Agent, Group and ServiceAccount subjects (use "*" for all)',
    fieldPath: '.name',
    reason: 'FieldValueRequired',
    check: (subject) => field(subject, 'kind') === 'Anonymous' || has(subject, 'name'),
  },
  {
    id: 'subject-anonymous-unnamed',
    path: 'spec.rules[*].subjects[*]',
    rule: "self.kind != 'Anonymous' || !has(self.name)",
    message: 'an Anonymous subject has no name',
    fieldPath: '.name',
    reason: 'FieldValueForbidden',
    check: (subject) => field(subject, 'kind') !== 'Anonymous' || !has(subject, 'name'),
  },
  {
    id: 'subject-namespace-only-for-serviceaccounts',
    path: 'spec.rules[*].subjects[*]',
    // `namespace` is a CEL reserved word: the API server exposes the field as `__namespace__`.
    rule: "!has(self.__namespace__) || self.kind == 'ServiceAccount'",
    message: 'namespace is only valid for ServiceAccount subjects',
    fieldPath: '.namespace',
    reason: 'FieldValueForbidden',
    check: (subject) => !has(subject, 'namespace') || field(subject, 'kind') === 'ServiceAccount',
  },
  {
    id: 'subject-serviceaccount-name',
    path: 'spec.rules[*].subjects[*]',
    rule: "self.kind != 'ServiceAccount' || !has(self.name) || self.name == '*' || self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
    message: 'a ServiceAccount name must be a lowercase RFC 1123 subdomain or "*"',
    fieldPath: '.name',
    check: (subject) => {
      if (field(subject, 'kind') !== 'ServiceAccount') return true;
      const name = field(subject, 'name');
      return typeof name !== 'string' || name === '*' || DNS_SUBDOMAIN.test(name);
    },
  },
];

export const SERVER_SELECTOR_RULES: readonly CrossFieldRule[] = [
  {
    id: 'servers-selects-something',
    path: 'spec.servers',
    rule: 'has(self.names) || has(self.selector)',
    message: 'set names, selector, or both (an empty selector {} selects every server)',
    reason: 'FieldValueRequired',
    check: (servers) => has(servers, 'names') || has(servers, 'selector'),
  },
];

export const CLUSTER_POLICY_SPEC_RULES: readonly CrossFieldRule[] = [
  {
    id: 'cluster-policy-rules-or-egressdeny',
    path: 'ClusterAgentPolicy spec',
    rule: '(has(self.rules) && size(self.rules) > 0) || (has(self.egressDeny) && size(self.egressDeny) > 0)',
    message: 'set rules, egressDeny, or both: a policy with neither does nothing',
    fieldPath: '.rules',
    reason: 'FieldValueRequired',
    check: (spec) => nonEmptyList(field(spec, 'rules')) || nonEmptyList(field(spec, 'egressDeny')),
  },
];

function nonEmptyList(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

export const LABEL_REQUIREMENT_RULES: readonly CrossFieldRule[] = [
  {
    id: 'selector-values-match-operator',
    path: '*.matchExpressions[*]',
    rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
    message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
    fieldPath: '.values',
    check: (requirement) => {
      const values = field(requirement, 'values');
      const count = Array.isArray(values) ? values.length : 0;
      const operator = field(requirement, 'operator');
      return operator === 'In' || operator === 'NotIn' ? count > 0 : count === 0;
    },
  },
];

export const LABEL_KEY_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN);

export const MATCH_LABELS_RULES: readonly CrossFieldRule[] = [
  {
    id: 'match-labels-keys',
    path: '*.matchLabels',
    rule: `self.all(k, k.size() <= 317 && k.matches('${LABEL_KEY_PATTERN.replaceAll('\\', '\\\\')}'))`,
    message:
      'keys must be label keys: an optional DNS subdomain prefix and "/", then a name of at most 63 characters',
    check: (labels) =>
      !isRecord(labels) || Object.keys(labels).every((k) => k.length <= 317 && LABEL_KEY.test(k)),
  },
];

/**
 * Rules the API server cannot check. The CRD's CEL sees only the object, and has no way to compile
 * a CEL string it holds; the controller reports these in the `Accepted` condition instead.
 */
export const CONTROLLER_ONLY_RULES: readonly ControllerOnlyRule[] = [
  {
    id: 'condition-compiles',
    path: 'spec.rules[*].conditions[*]',
    why: 'a condition is CEL over the call (args, tool, subject); compiling it needs a CEL compiler, which admission CEL does not expose',
  },
];

export const ALL_CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  ...TOOL_RULES,
  ...ENV_RESERVED_RULES,
  ...AUTH_RULES,
  ...SUBJECT_RULES,
  ...SERVER_SELECTOR_RULES,
  ...CLUSTER_POLICY_SPEC_RULES,
  ...LABEL_REQUIREMENT_RULES,
  ...MATCH_LABELS_RULES,
];

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function field(value: unknown, key: string): unknown {
  return isRecord(value) ? value[key] : undefined;
}

/**
 * The CRD validation tables: resources the API server and zod must both reject (naming the
 * field) or both accept. Each case is a valid builder plus one small edit.
 */
import { MCPSERVER_NAME_MAX } from '../../src/api/v1alpha1/index.ts';

export type Obj = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown>;
};
type Edit = (obj: Obj) => void;

export const server = (...edits: Edit[]): Obj =>
  apply(
    {
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'McpServer',
      metadata: { name: 'srv' },
      spec: {
        auth: { apiKeys: { secretRef: { name: 'keys' } } },
        tools: [tool('echo')],
      },
    },
    edits,
  );

export const tool = (name: string): Record<string, unknown> => ({
  name,
  description: `the ${name} tool`,
  runtime: 'python',
  code: 'def main(args):\n    return args\n',
});

export const policy = (...edits: Edit[]): Obj =>
  apply(
    {
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'AgentPolicy',
      metadata: { name: 'pol' },
      spec: {
        servers: { names: ['srv'] },
        rules: [
          {
            effect: 'Allow',
            subjects: [{ kind: 'Agent', name: 'bot' }],
            tools: ['echo'],
            reason: 'bot may echo',
          },
        ],
      },
    },
    edits,
  );

export const clusterPolicy = (...edits: Edit[]): Obj => {
  const obj = policy(...edits);
  obj.kind = 'ClusterAgentPolicy';
  return obj;
};

/** `set('spec.tools[0].runtime', 'ruby')`: replaces (or adds) one field. */
export const set =
  (path: string, value: unknown): Edit =>
  (obj) => {
    const { parent, key } = locate(obj, path);
    parent[key] = structuredClone(value);
  };

/** `unset('spec.tools[0].code')`: removes one field. */
export const unset =
  (path: string): Edit =>
  (obj) => {
    const { parent, key } = locate(obj, path);
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  };

function apply(obj: Obj, edits: Edit[]): Obj {
  for (const edit of edits) edit(obj);
  return obj;
}

function locate(obj: unknown, path: string): { parent: Record<string, unknown>; key: string } {
  const segments = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  const key = segments.pop() as string;
  let node = obj as Record<string, unknown>;
  for (const segment of segments) {
    node[segment] ??= {};
    node = node[segment] as Record<string, unknown>;
  }
  return { parent: node, key };
}

export interface InvalidCase {
  name: string;
  object: Obj;
  /** The field path both the API server and zod must name. */
  field: string;
  /** The id of the cross-field or controller-only rule the case exercises, if any. */
  rule?: string;
  /**
   * Only the controller (and `mcpworks serve`) can reject it: the API server stores it and the
   * controller reports it in the policy's Accepted condition.
   */
  controllerOnly?: string;
  /** Words the API server's message must carry besides the field (what a user reads). */
  message?: string;
}

const CONDITIONS_NEED_A_CEL_COMPILER =
  'a condition is CEL over the call; admission CEL cannot compile a CEL string it holds';
const long = (n: number, fill = 'a') => fill.repeat(n);

export const INVALID_CASES: InvalidCase[] = [
  // McpServer: tools
  {
    name: 'duplicate tool names',
    object: server(set('spec.tools[1]', tool('echo'))),
    field: 'spec.tools[1]',
  },
  {
    name: 'neither code nor codeFrom',
    object: server(unset('spec.tools[0].code')),
    field: 'spec.tools[0].code',
    rule: 'tool-code-xor-codeFrom',
  },
  {
    name: 'both code and codeFrom',
    object: server(
      set('spec.tools[0].codeFrom', { configMapKeyRef: { name: 'src', key: 'main.py' } }),
    ),
    field: 'spec.tools[0].code',
    rule: 'tool-code-xor-codeFrom',
  },
  {
    name: 'unknown runtime',
    object: server(set('spec.tools[0].runtime', 'ruby')),
    field: 'spec.tools[0].runtime',
  },
  {
    name: 'negative timeout',
    object: server(set('spec.tools[0].timeoutSeconds', -1)),
    field: 'spec.tools[0].timeoutSeconds',
  },
  {
    name: 'huge timeout',
    object: server(set('spec.tools[0].timeoutSeconds', 86400)),
    field: 'spec.tools[0].timeoutSeconds',
  },
  {
    name: 'fractional timeout',
    object: server(set('spec.tools[0].timeoutSeconds', 1.5)),
    field: 'spec.tools[0].timeoutSeconds',
  },
  {
    name: 'memory above the cap',
    object: server(set('spec.tools[0].limits.memoryMiB', 8192)),
    field: 'spec.tools[0].limits.memoryMiB',
  },
  {
    name: 'memory below the floor',
    object: server(set('spec.tools[0].limits.memoryMiB', 8)),
    field: 'spec.tools[0].limits.memoryMiB',
  },
  {
    name: 'cpu above the cap',
    object: server(set('spec.tools[0].limits.cpuMillicores', 64000)),
    field: 'spec.tools[0].limits.cpuMillicores',
  },
  {
    name: 'zero pids',
    object: server(set('spec.tools[0].limits.pids', 0)),
    field: 'spec.tools[0].limits.pids',
  },
  {
    name: 'output cap above 16 MiB',
    object: server(set('spec.tools[0].limits.maxOutputBytes', 2 ** 30)),
    field: 'spec.tools[0].limits.maxOutputBytes',
  },
  {
    name: 'tmpfs above the cap',
    object: server(set('spec.tools[0].limits.tmpfsMiB', 4096)),
    field: 'spec.tools[0].limits.tmpfsMiB',
  },
  {
    name: 'tool name starting with a digit',
    object: server(set('spec.tools[0].name', '1tool')),
    field: 'spec.tools[0].name',
  },
  {
    name: 'tool name with capitals (a *shell* guardrail would miss RunShell)',
    object: server(set('spec.tools[0].name', 'RunShell')),
    field: 'spec.tools[0].name',
  },
  {
    name: 'tool name with a space',
    object: server(set('spec.tools[0].name', 'my tool')),
    field: 'spec.tools[0].name',
  },
  {
    name: 'tool name of 65 characters',
    object: server(set('spec.tools[0].name', long(65))),
    field: 'spec.tools[0].name',
  },
  { name: 'no tools', object: server(set('spec.tools', [])), field: 'spec.tools' },
  {
    name: 'tool without description',
    object: server(unset('spec.tools[0].description')),
    field: 'spec.tools[0].description',
  },
  {
    name: 'inline code above 64 KiB',
    object: server(set('spec.tools[0].code', long(65537))),
    field: 'spec.tools[0].code',
  },
  {
    name: 'description of 1025 characters outside the BMP',
    object: server(set('spec.tools[0].description', '\u{1F600}'.repeat(1025))),
    field: 'spec.tools[0].description',
  },
  {
    name: 'inputSchema that is not an object schema',
    object: server(set('spec.tools[0].inputSchema', { type: 'array' })),
    field: 'spec.tools[0].inputSchema.type',
  },
  {
    name: 'environment variable name with a dash',
    object: server(set('spec.tools[0].env', [{ name: 'MY-VAR', value: 'x' }])),
    field: 'spec.tools[0].env[0].name',
  },
  {
    name: 'duplicate environment variable',
    object: server(
      set('spec.tools[0].env', [
        { name: 'A', value: '1' },
        { name: 'A', value: '2' },
      ]),
    ),
    field: 'spec.tools[0].env[1]',
  },
  {
    name: 'codeFrom ConfigMap name with uppercase',
    object: server(
      unset('spec.tools[0].code'),
      set('spec.tools[0].codeFrom', { configMapKeyRef: { name: 'Sources', key: 'main.py' } }),
    ),
    field: 'spec.tools[0].codeFrom.configMapKeyRef.name',
  },
  {
    name: 'misspelled field (timeout)',
    object: server(set('spec.tools[0].timeout', 5)),
    field: 'spec.tools[0].timeout',
  },
  // McpServer: authentication
  { name: 'no authentication at all', object: server(unset('spec.auth')), field: 'spec.auth' },
  {
    name: 'auth with no method',
    object: server(set('spec.auth', {})),
    field: 'spec.auth',
    rule: 'auth-method-required',
  },
  {
    name: 'anonymous explicitly off and no method',
    object: server(set('spec.auth', { anonymous: { enabled: false } })),
    field: 'spec.auth',
    rule: 'auth-method-required',
  },
  {
    name: 'OIDC issuer over plain http',
    object: server(set('spec.auth.oidc', { issuer: 'http://issuer.example', audiences: ['mcp'] })),
    field: 'spec.auth.oidc.issuer',
  },
  {
    name: 'OIDC without audiences',
    object: server(set('spec.auth.oidc', { issuer: 'https://issuer.example', audiences: [] })),
    field: 'spec.auth.oidc.audiences',
  },
  {
    name: 'API-key Secret name with an underscore',
    object: server(set('spec.auth.apiKeys.secretRef.name', 'api_keys')),
    field: 'spec.auth.apiKeys.secretRef.name',
  },
  // McpServer: workloads and metadata
  {
    name: 'too many gateway replicas',
    object: server(set('spec.gateway.replicas', 500)),
    field: 'spec.gateway.replicas',
  },
  {
    name: 'zero executor concurrency',
    object: server(set('spec.executor.maxConcurrency', 0)),
    field: 'spec.executor.maxConcurrency',
  },
  {
    name: 'memory quantity that is not a quantity',
    object: server(set('spec.gateway.resources.limits', { memory: 'lots' })),
    field: 'spec.gateway.resources.limits.memory',
  },
  {
    name: 'server name too long for its child objects',
    object: server(set('metadata.name', long(MCPSERVER_NAME_MAX + 1))),
    field: 'metadata.name',
  },
  {
    name: 'label value with spaces',
    object: server(set('metadata.labels', { team: 'platform team' })),
    field: 'metadata.labels',
  },
  {
    name: 'annotation key with two slashes',
    object: server(set('metadata.annotations', { 'a/b/c': 'x' })),
    field: 'metadata.annotations',
  },
  // AgentPolicy
  {
    name: 'rule with no subjects',
    object: policy(set('spec.rules[0].subjects', [])),
    field: 'spec.rules[0].subjects',
  },
  {
    name: 'unknown effect',
    object: policy(set('spec.rules[0].effect', 'Maybe')),
    field: 'spec.rules[0].effect',
  },
  { name: 'policy with no rules', object: policy(set('spec.rules', [])), field: 'spec.rules' },
  {
    name: 'rule without a reason',
    object: policy(unset('spec.rules[0].reason')),
    field: 'spec.rules[0].reason',
  },
  {
    name: 'rule with no tools',
    object: policy(set('spec.rules[0].tools', [])),
    field: 'spec.rules[0].tools',
  },
  {
    name: 'tool pattern with shell characters',
    object: policy(set('spec.rules[0].tools', ['echo; rm -rf /'])),
    field: 'spec.rules[0].tools[0]',
  },
  {
    name: 'tool pattern with capitals (it could never match a tool name)',
    object: policy(set('spec.rules[0].tools', ['*Shell*'])),
    field: 'spec.rules[0].tools[0]',
  },
  {
    name: 'unknown subject kind',
    object: policy(set('spec.rules[0].subjects[0].kind', 'User')),
    field: 'spec.rules[0].subjects[0].kind',
  },
  {
    name: 'Agent subject without a name',
    object: policy(unset('spec.rules[0].subjects[0].name')),
    field: 'spec.rules[0].subjects[0].name',
    rule: 'subject-name-required',
  },
  {
    name: 'Anonymous subject with a name',
    object: policy(set('spec.rules[0].subjects[0]', { kind: 'Anonymous', name: 'guest' })),
    field: 'spec.rules[0].subjects[0].name',
    rule: 'subject-anonymous-unnamed',
  },
  {
    name: 'namespace on an Agent subject',
    object: policy(set('spec.rules[0].subjects[0].namespace', 'team-a')),
    field: 'spec.rules[0].subjects[0].namespace',
    rule: 'subject-namespace-only-for-serviceaccounts',
  },
  {
    name: 'ServiceAccount name that is not a DNS subdomain',
    object: policy(set('spec.rules[0].subjects[0]', { kind: 'ServiceAccount', name: 'Build Bot' })),
    field: 'spec.rules[0].subjects[0].name',
    rule: 'subject-serviceaccount-name',
  },
  {
    name: 'servers selecting nothing',
    object: policy(set('spec.servers', {})),
    field: 'spec.servers',
    rule: 'servers-selects-something',
  },
  {
    name: 'In selector without values',
    object: policy(
      set('spec.servers', { selector: { matchExpressions: [{ key: 'tier', operator: 'In' }] } }),
    ),
    field: 'spec.servers.selector.matchExpressions[0].values',
    rule: 'selector-values-match-operator',
  },
  {
    name: 'Exists selector with values',
    object: policy(
      set('spec.servers', {
        selector: { matchExpressions: [{ key: 'tier', operator: 'Exists', values: ['a'] }] },
      }),
    ),
    field: 'spec.servers.selector.matchExpressions[0].values',
    rule: 'selector-values-match-operator',
  },
  {
    name: 'matchLabels with an invalid key',
    object: policy(set('spec.servers', { selector: { matchLabels: { 'bad key!': 'x' } } })),
    field: 'spec.servers.selector.matchLabels',
    rule: 'match-labels-keys',
  },
  {
    name: 'matchLabels key whose name part has 64 characters',
    object: policy(
      set('spec.servers', { selector: { matchLabels: { [`example.com/${long(64)}`]: 'x' } } }),
    ),
    field: 'spec.servers.selector.matchLabels',
    rule: 'match-labels-keys',
  },
  {
    name: 'selector with 65 labels',
    object: policy(
      set('spec.servers', {
        selector: {
          matchLabels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'x'])),
        },
      }),
    ),
    field: 'spec.servers.selector.matchLabels',
  },
  {
    name: 'empty condition',
    object: policy(set('spec.rules[0].conditions', [''])),
    field: 'spec.rules[0].conditions[0]',
  },
  {
    name: 'condition that does not parse',
    object: policy(set('spec.rules[0].conditions', ['args.size >'])),
    field: 'spec.rules[0].conditions[0]',
    rule: 'condition-compiles',
    controllerOnly: CONDITIONS_NEED_A_CEL_COMPILER,
  },
  {
    name: 'condition naming an unknown variable',
    object: policy(set('spec.rules[0].conditions', ['request.user == "x"'])),
    field: 'spec.rules[0].conditions[0]',
    rule: 'condition-compiles',
    controllerOnly: CONDITIONS_NEED_A_CEL_COMPILER,
  },
  {
    name: 'condition that is not boolean',
    object: policy(set('spec.rules[0].conditions', ['tool + "x"'])),
    field: 'spec.rules[0].conditions[0]',
    rule: 'condition-compiles',
    controllerOnly: CONDITIONS_NEED_A_CEL_COMPILER,
  },
  // McpServer: secretEnv, egress, executor image
  {
    name: 'a bash tool with egress',
    object: server(
      set('spec.tools[0].runtime', 'bash'),
      set('spec.tools[0].egress', [{ host: 'api.github.com' }]),
    ),
    field: 'spec.tools[0].egress',
    rule: 'tool-egress-needs-python-or-node',
    message: 'egress needs runtime python or node',
  },
  {
    name: 'egress host that is a wildcard over a top-level domain',
    object: server(set('spec.tools[0].egress', [{ host: '*.com' }])),
    field: 'spec.tools[0].egress[0].host',
  },
  {
    name: 'egress host that is an IP address',
    object: server(set('spec.tools[0].egress', [{ host: '10.0.0.1' }])),
    field: 'spec.tools[0].egress[0].host',
  },
  {
    name: 'egress host with a wildcard inside a label',
    object: server(set('spec.tools[0].egress', [{ host: 'x*.a.com' }])),
    field: 'spec.tools[0].egress[0].host',
  },
  {
    name: 'egress port 0',
    object: server(set('spec.tools[0].egress', [{ host: 'a.example.com', ports: [0] }])),
    field: 'spec.tools[0].egress[0].ports[0]',
  },
  {
    name: 'a reserved env name (the egress proxy address)',
    object: server(set('spec.tools[0].env', [{ name: 'HTTPS_PROXY', value: 'http://evil:3128' }])),
    field: 'spec.tools[0].env[0].name',
    rule: 'env-name-not-reserved',
    message: 'is set by the executor',
  },
  {
    name: 'a reserved secretEnv name (the CA bundle)',
    object: server(
      set('spec.tools[0].secretEnv', [
        { name: 'NODE_EXTRA_CA_CERTS', secretKeyRef: { name: 'ca', key: 'pem' } },
      ]),
    ),
    field: 'spec.tools[0].secretEnv[0].name',
    rule: 'env-name-not-reserved',
  },
  {
    name: 'a variable in both env and secretEnv',
    object: server(
      set('spec.tools[0].env', [{ name: 'TOKEN', value: 'x' }]),
      set('spec.tools[0].secretEnv', [
        { name: 'TOKEN', secretKeyRef: { name: 'gh', key: 'token' } },
      ]),
    ),
    field: 'spec.tools[0].secretEnv',
    rule: 'tool-secretenv-not-in-env',
    message: 'a variable cannot be in both env and secretEnv',
  },
  {
    name: 'secretEnv from a Secret name with capitals',
    object: server(
      set('spec.tools[0].secretEnv', [
        { name: 'TOKEN', secretKeyRef: { name: 'GitHub', key: 'token' } },
      ]),
    ),
    field: 'spec.tools[0].secretEnv[0].secretKeyRef.name',
  },
  {
    name: 'executor image with a space',
    object: server(set('spec.executor.image', 'team/sandbox extra:1')),
    field: 'spec.executor.image',
  },
  // ClusterAgentPolicy
  {
    name: 'namespaceSelector with an unknown operator',
    object: clusterPolicy(
      set('spec.namespaceSelector', {
        matchExpressions: [{ key: 'env', operator: 'Like', values: ['p'] }],
      }),
    ),
    field: 'spec.namespaceSelector.matchExpressions[0].operator',
  },
  {
    name: 'cluster rule with an unknown effect',
    object: clusterPolicy(set('spec.rules[0].effect', 'allow')),
    field: 'spec.rules[0].effect',
  },
  // ClusterAgentPolicy egressDeny
  {
    name: 'cluster policy with neither rules nor egressDeny',
    object: clusterPolicy(unset('spec.rules')),
    field: 'spec.rules',
    rule: 'cluster-policy-rules-or-egressdeny',
  },
  {
    name: 'cluster policy with empty rules and empty egressDeny',
    object: clusterPolicy(set('spec.rules', []), set('spec.egressDeny', [])),
    field: 'spec.rules',
    rule: 'cluster-policy-rules-or-egressdeny',
  },
  {
    name: 'egressDeny host that is an IP address',
    object: guardrail(set('spec.egressDeny[0].hosts[0]', '169.254.169.254')),
    field: 'spec.egressDeny[0].hosts[0]',
  },
  {
    name: 'egressDeny wildcard over a top-level domain',
    object: guardrail(set('spec.egressDeny[0].hosts[0]', '*.com')),
    field: 'spec.egressDeny[0].hosts[0]',
  },
  {
    name: 'egressDeny wildcard inside a label',
    object: guardrail(set('spec.egressDeny[0].hosts[0]', 'api*.example.com')),
    field: 'spec.egressDeny[0].hosts[0]',
  },
  {
    name: 'egressDeny without hosts',
    object: guardrail(set('spec.egressDeny[0].hosts', [])),
    field: 'spec.egressDeny[0].hosts',
  },
  {
    name: 'egressDeny without a reason',
    object: guardrail(unset('spec.egressDeny[0].reason')),
    field: 'spec.egressDeny[0].reason',
  },
  {
    name: 'egressDeny tool glob in upper case',
    object: guardrail(set('spec.egressDeny[0].tools', ['Fetch_*'])),
    field: 'spec.egressDeny[0].tools[0]',
  },
];

/** A ClusterAgentPolicy with only an egress guardrail. */
function guardrail(...edits: Edit[]): Obj {
  return clusterPolicy(
    unset('spec.rules'),
    set('spec.egressDeny', [
      { hosts: ['pastebin.com', '*.paste.example'], reason: 'no paste sites' },
    ]),
    ...edits,
  );
}

export interface ValidCase {
  name: string;
  object: Obj;
}

export const VALID_CASES: ValidCase[] = [
  { name: 'a ClusterAgentPolicy with only egressDeny', object: guardrail() },
  {
    name: 'a ClusterAgentPolicy with rules and egressDeny, tools narrowed, a trailing dot',
    object: clusterPolicy(
      set('spec.egressDeny', [
        { hosts: ['API.GitHub.com.'], tools: ['fetch_*', 'sync'], reason: 'tickets stay inside' },
      ]),
    ),
  },
  {
    name: 'a ClusterAgentPolicy with empty rules and egressDeny',
    object: clusterPolicy(
      set('spec.rules', []),
      set('spec.egressDeny', [{ hosts: ['a.example'], reason: 'r' }]),
    ),
  },
  {
    name: 'a python tool with secretEnv, env and egress',
    object: server(
      set('spec.tools[0].env', [{ name: 'GITHUB_API', value: 'https://api.github.com' }]),
      set('spec.tools[0].secretEnv', [
        { name: 'GITHUB_TOKEN', secretKeyRef: { name: 'github.creds', key: 'token' } },
      ]),
      set('spec.tools[0].egress', [
        { host: 'api.github.com', ports: [443] },
        { host: '*.internal.example.com' },
      ]),
    ),
  },
  {
    name: 'a node tool with egress to a trailing-dot name on two ports',
    object: server(
      set('spec.tools[0].runtime', 'node'),
      set('spec.tools[0].code', 'function main(args) { return args; }'),
      set('spec.tools[0].egress', [{ host: 'API.Example.com.', ports: [443, 8443] }]),
    ),
  },
  {
    name: 'a bash tool with secretEnv (no egress)',
    object: server(
      set('spec.tools[0].runtime', 'bash'),
      set('spec.tools[0].code', 'cat'),
      set('spec.tools[0].secretEnv', [
        { name: 'TOKEN', secretKeyRef: { name: 'gh', key: 'token' } },
      ]),
    ),
  },
  {
    name: 'an executor image by digest from a registry with a port',
    object: server(
      set(
        'spec.executor.image',
        `registry.example.com:5000/team/sandbox-extra@sha256:${'0'.repeat(64)}`,
      ),
    ),
  },
  {
    name: 'anonymous-only server',
    object: server(set('spec.auth', { anonymous: { enabled: true } })),
  },
  {
    name: 'code from a ConfigMap',
    object: server(
      unset('spec.tools[0].code'),
      set('spec.tools[0].codeFrom', { configMapKeyRef: { name: 'src.v1', key: 'main.py' } }),
    ),
  },
  {
    name: 'every limit at its minimum',
    object: server(
      set('spec.tools[0].timeoutSeconds', 1),
      set('spec.tools[0].limits', {
        memoryMiB: 16,
        cpuMillicores: 50,
        pids: 1,
        maxOutputBytes: 1024,
        tmpfsMiB: 1,
      }),
    ),
  },
  {
    name: 'every limit at its maximum',
    object: server(
      set('spec.tools[0].timeoutSeconds', 300),
      set('spec.tools[0].limits', {
        memoryMiB: 4096,
        cpuMillicores: 4000,
        pids: 1024,
        maxOutputBytes: 16777216,
        tmpfsMiB: 1024,
      }),
    ),
  },
  {
    name: 'tool name of 64 characters with dots and dashes',
    object: server(set('spec.tools[0].name', `a.b-c_${long(58)}`)),
  },
  {
    name: `server name of ${MCPSERVER_NAME_MAX} characters`,
    object: server(set('metadata.name', long(MCPSERVER_NAME_MAX))),
  },
  {
    // 1024 code points (what the API server counts) but 2048 UTF-16 units (JavaScript's length).
    name: 'description of 1024 characters outside the BMP',
    object: server(set('spec.tools[0].description', '\u{1F600}'.repeat(1024))),
  },
  {
    name: 'free-form inputSchema',
    object: server(
      set('spec.tools[0].inputSchema', {
        type: 'object',
        properties: { n: { type: 'integer', minimum: 0, 'x-vendor': { nested: [1, 2] } } },
        required: ['n'],
      }),
    ),
  },
  {
    name: 'OIDC and ServiceAccount tokens together',
    object: server(
      set('spec.auth', {
        oidc: {
          issuer: 'https://login.example.com:8443/realms/x',
          audiences: ['mcp'],
          requiredScopes: ['tools'],
        },
        serviceAccountTokens: { audiences: ['mcpworks'] },
      }),
    ),
  },
  {
    name: 'integer and string quantities',
    object: server(
      set('spec.gateway.resources', {
        requests: { cpu: '250m', memory: '64Mi' },
        limits: { cpu: 1, memory: '1Gi' },
      }),
    ),
  },
  {
    name: 'zero replicas (scaled down)',
    object: server(set('spec.gateway.replicas', 0), set('spec.executor.replicas', 0)),
  },
  {
    name: 'many tools',
    object: server(
      set(
        'spec.tools',
        ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => tool(`tool_${n}`)),
      ),
    ),
  },
  {
    name: 'every subject kind',
    object: policy(
      set('spec.rules[0].subjects', [
        { kind: 'Agent', name: '*' },
        { kind: 'Group', name: 'ops' },
        { kind: 'ServiceAccount', name: 'builder', namespace: 'ci' },
        { kind: 'ServiceAccount', name: '*' },
        { kind: 'Anonymous' },
      ]),
    ),
  },
  {
    name: 'Deny with a condition',
    object: policy(
      set('spec.rules[0].effect', 'Deny'),
      set('spec.rules[0].conditions', ['has(args.path) && args.path.startsWith("/etc")']),
    ),
  },
  {
    name: 'glob patterns',
    object: policy(
      set('spec.rules[0].tools', ['*', 'read_?', 'fs.[a-c]*', '{get,list}_*', '!admin*']),
    ),
  },
  {
    name: 'every server by an empty selector',
    object: policy(set('spec.servers', { selector: {} })),
  },
  {
    name: 'servers by names and labels',
    object: policy(
      set('spec.servers', {
        names: ['a', 'b'],
        selector: {
          matchLabels: { 'app.kubernetes.io/part-of': 'tools' },
          matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['dev'] }],
        },
      }),
    ),
  },
  {
    name: 'labels and annotations on a server',
    object: server(
      set('metadata.labels', { 'app.kubernetes.io/name': 'tools', tier: '' }),
      set('metadata.annotations', { 'example.com/owner': 'team a, see https://example.com' }),
    ),
  },
  { name: 'audit-only policy', object: policy(set('spec.auditOnly', true)) },
  {
    name: 'cluster policy over labelled namespaces',
    object: clusterPolicy(
      set('spec.namespaceSelector', { matchLabels: { 'kubernetes.io/metadata.name': 'prod' } }),
    ),
  },
];

import { z } from 'zod';
import {
  API_VERSION,
  ConditionsSchema,
  DNS_LABEL_PATTERN,
  DnsSubdomainSchema,
  ObjectMetaSchema,
} from './common.ts';
import { keyedList, text, withRules } from './rules.ts';
import { AUTH_RULES, ENV_RESERVED_RULES, RESERVED_ENV_NAMES, TOOL_RULES } from './validations.ts';

/**
 * McpServer names are DNS labels short enough that `<name>-gateway` and `<name>-executor`
 * (Services, Deployments) stay valid DNS labels themselves.
 */
export const MCPSERVER_NAME_MAX = 52;
export const McpServerNameSchema = z
  .string()
  .min(1)
  .max(MCPSERVER_NAME_MAX)
  .regex(new RegExp(DNS_LABEL_PATTERN), 'must be a lowercase RFC 1123 label');

export const RUNTIMES = ['python', 'node', 'bash'] as const;
export const RuntimeSchema = z.enum(RUNTIMES);
export type Runtime = z.infer<typeof RuntimeSchema>;

/**
 * MCP tool names: lower case only, a letter first, then letters, digits, `_`, `-` or `.`; at most
 * 64 characters. Policies match names exactly, so one case everywhere keeps a guardrail such as
 * `*shell*` from missing a tool named `RunShell` (docs/api.md, "Tool names").
 */
export const TOOL_NAME_PATTERN = '^[a-z][a-z0-9_.-]{0,63}$';
export const ToolNameSchema = z.string().min(1).max(64).regex(new RegExp(TOOL_NAME_PATTERN), {
  message:
    'must be lower case: a letter first, then only a-z, 0-9, "_", "-" or "." (max 64); policies match tool names exactly',
});

/** Hard caps: a tool can ask for less, never more. */
export const LIMIT_BOUNDS = {
  timeoutSeconds: { min: 1, max: 300, default: 10 },
  memoryMiB: { min: 16, max: 4096, default: 256 },
  cpuMillicores: { min: 50, max: 4000, default: 1000 },
  pids: { min: 1, max: 1024, default: 64 },
  maxOutputBytes: { min: 1024, max: 16 * 1024 * 1024, default: 1024 * 1024 },
  tmpfsMiB: { min: 1, max: 1024, default: 64 },
} as const;

const boundedInt = (bound: { min: number; max: number; default: number }) =>
  z.number().int().min(bound.min).max(bound.max).default(bound.default);

export const ToolLimitsSchema = z.strictObject({
  memoryMiB: boundedInt(LIMIT_BOUNDS.memoryMiB),
  cpuMillicores: boundedInt(LIMIT_BOUNDS.cpuMillicores),
  pids: boundedInt(LIMIT_BOUNDS.pids),
  maxOutputBytes: boundedInt(LIMIT_BOUNDS.maxOutputBytes),
  tmpfsMiB: boundedInt(LIMIT_BOUNDS.tmpfsMiB),
});
export type ToolLimits = z.infer<typeof ToolLimitsSchema>;

export { RESERVED_ENV_NAMES };

/** A Secret data key, as the API server accepts one. */
const SecretDataKeySchema = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[-._a-zA-Z0-9]+$/, { message: 'must be a valid Secret key' });

const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const EnvNameSchema = z
  .string()
  .max(128)
  .regex(ENV_NAME_PATTERN, { message: 'must be a valid environment variable name' });

/**
 * An environment variable whose value comes from a key of a Secret in the McpServer's namespace.
 * Only the tool that declares it ever sees the value (one call at a time); it never appears in a
 * decision record, log line, Event, metric, error message or status (docs/tools.md, "Secrets").
 */
export const SecretEnvVarSchema = withRules(
  z.strictObject({
    name: EnvNameSchema.describe('The variable the tool reads.'),
    secretKeyRef: z
      .strictObject({
        name: DnsSubdomainSchema.describe('The Secret, in the namespace of the McpServer.'),
        key: SecretDataKeySchema.describe('The Secret data key holding the value.'),
      })
      .describe('Where the value comes from.'),
  }),
  ENV_RESERVED_RULES,
);
export type SecretEnvVar = z.infer<typeof SecretEnvVarSchema>;

export const EnvVarSchema = withRules(
  z.strictObject({
    name: EnvNameSchema,
    value: text(4096),
  }),
  ENV_RESERVED_RULES,
);

/**
 * Egress host names: an ASCII DNS name (letters, digits, hyphens; upper case allowed, matched
 * case-insensitively; one trailing dot allowed), or `*.` and a name of at least two labels. No IP
 * addresses (the last label is never all digits), no other wildcards. The executor's proxy
 * re-checks every rule (src/executor/egress/allowlist.ts).
 */
export const EGRESS_HOST_PATTERN =
  '^(\\*\\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\\.|([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\\.)*)([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\\.)*[A-Za-z]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\\.?$';

export const EgressRuleSchema = z.strictObject({
  host: z
    .string()
    .min(1)
    .max(255)
    .regex(new RegExp(EGRESS_HOST_PATTERN), {
      message:
        'must be a DNS name (a-z, 0-9, "-" in dot-separated labels) or "*." and a name of at least two labels; no IP addresses, no other wildcards',
    })
    .describe(
      'A DNS name, or *.suffix for one or more labels in front of suffix (not suffix itself).',
    ),
  ports: z
    .array(z.number().int().min(1).max(65_535))
    .min(1)
    .max(64)
    .optional()
    .describe('TCP ports; default [443]. On 443 the TLS server name must be the host.'),
});
export type EgressRuleSpec = z.infer<typeof EgressRuleSchema>;

export const ConfigMapKeyRefSchema = z.strictObject({
  name: DnsSubdomainSchema,
  key: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[-._a-zA-Z0-9]+$/, { message: 'must be a valid ConfigMap key' }),
});

/** MCP requires a tool's inputSchema to be a JSON Schema of type "object". */
export const InputSchemaSchema = z
  .looseObject({ type: z.literal('object') })
  .meta({ 'x-kubernetes-preserve-unknown-fields': true });

export const ToolSchema = withRules(
  z.strictObject({
    name: ToolNameSchema.describe('Tool name as MCP clients see it; unique within the server.'),
    description: text(1024, 1).describe('What the tool does, shown to agents.'),
    runtime: RuntimeSchema.describe(
      'Interpreter: python (def main(args)), node (function main(args)) or bash (JSON on stdin).',
    ),
    /** Source inline. Exactly one of `code` and `codeFrom`. */
    code: text(65536, 1).optional().describe('Source inline. Exactly one of code and codeFrom.'),
    codeFrom: z
      .strictObject({ configMapKeyRef: ConfigMapKeyRefSchema })
      .optional()
      .describe(
        'Source from a ConfigMap key in the same namespace. Exactly one of code and codeFrom.',
      ),
    /**
     * JSON Schema of the arguments, as MCP's tools/list publishes it. Kept verbatim (the one
     * place the CRD preserves unknown fields); its root must be an object schema.
     */
    inputSchema: InputSchemaSchema.default({ type: 'object' }).describe(
      'JSON Schema (type: object) of the arguments, as tools/list publishes it.',
    ),
    timeoutSeconds: boundedInt(LIMIT_BOUNDS.timeoutSeconds).describe(
      'Wall-clock limit of one call.',
    ),
    limits: ToolLimitsSchema.default(ToolLimitsSchema.parse({})).describe(
      'Per-call sandbox limits; each is capped by the operator.',
    ),
    env: keyedList(EnvVarSchema, 'name', { max: 32 })
      .optional()
      .describe(
        'Environment variables of the sandboxed process (never secrets: they are visible in the McpServer; use secretEnv).',
      ),
    secretEnv: keyedList(SecretEnvVarSchema, 'name', { max: 16 })
      .optional()
      .describe(
        'Environment variables from Secret keys in this namespace; only this tool sees them, and its results are scanned for their values.',
      ),
    egress: z
      .array(EgressRuleSchema)
      .max(64)
      .optional()
      .describe(
        "Hosts the tool may reach through the executor's egress proxy (python and node only); none: no network at all.",
      ),
  }),
  TOOL_RULES,
);
export type Tool = z.infer<typeof ToolSchema>;

export const SecretKeyRefSchema = z.strictObject({
  name: DnsSubdomainSchema,
  key: SecretDataKeySchema.optional(),
});

export const AuthSchema = withRules(
  z.strictObject({
    /** API keys: a Secret whose entries map key ids to scrypt hashes and agents (docs/api-keys.md). */
    apiKeys: z
      .strictObject({ secretRef: SecretKeyRefSchema })
      .optional()
      .describe(
        'Bearer API keys: a Secret mapping key ids to scrypt hashes and agents (docs/api-keys.md).',
      ),
    oidc: z
      .strictObject({
        issuer: z
          .string()
          .max(512)
          .regex(/^https:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[^\s?#]*)?$/, {
            message: 'must be an https URL without query or fragment',
          }),
        audiences: z.array(text(512, 1)).min(1).max(16),
        agentClaim: text(128, 1).default('sub'),
        groupsClaim: text(128, 1).default('groups'),
        requiredScopes: z.array(text(128, 1)).max(16).optional(),
        clockSkewSeconds: z.number().int().min(0).max(300).default(60),
        maxTokenLifetimeSeconds: z
          .number()
          .int()
          .min(60)
          .max(2_592_000)
          .default(86_400)
          .describe('Refuse tokens valid for longer than this (exp - iat), in seconds.'),
      })
      .optional()
      .describe('OpenID Connect bearer tokens (JWT) from this https issuer, for these audiences.'),
    serviceAccountTokens: z
      .strictObject({ audiences: z.array(text(512, 1)).min(1).max(16) })
      .optional()
      .describe('Kubernetes ServiceAccount tokens (TokenReview) bound to one of these audiences.'),
    /** Unauthenticated callers, as the `Anonymous` policy subject. Off unless explicitly enabled. */
    anonymous: z
      .strictObject({ enabled: z.boolean().default(false) })
      .default({ enabled: false })
      .describe('Unauthenticated callers, as the Anonymous policy subject. Off unless enabled.'),
  }),
  AUTH_RULES,
);
export type Auth = z.infer<typeof AuthSchema>;

/** A resource.Quantity as manifests write it: `2`, `500m`, `128Mi`. */
export const QUANTITY_PATTERN = '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$';
const QuantitySchema = z.union([
  z.number().int().min(0),
  z
    .string()
    .max(64)
    .regex(new RegExp(QUANTITY_PATTERN), { message: 'must be a Kubernetes quantity' }),
]);
const ResourceListSchema = z.strictObject({
  cpu: QuantitySchema.optional(),
  memory: QuantitySchema.optional(),
  'ephemeral-storage': QuantitySchema.optional(),
});
export const ResourceRequirementsSchema = z.strictObject({
  requests: ResourceListSchema.optional(),
  limits: ResourceListSchema.optional(),
});

export const GatewaySpecSchema = z.strictObject({
  replicas: z.number().int().min(0).max(50).default(2).describe('Gateway pods.'),
  resources: ResourceRequirementsSchema.optional(),
});

/**
 * The executor pods' privileges (docs/adr/0004-executor-privileges.md):
 * - `Standard`: container root with SYS_ADMIN, SETUID, SETGID, SYS_CHROOT in the node's user
 *   namespace, RuntimeDefault seccomp; works on cgroup v1 and v2. Node-root-equivalent.
 * - `UserNamespace`: the same in a user-namespaced pod (`hostUsers: false`, procMount
 *   `Unmasked`); no longer node-root-equivalent. Needs Kubernetes >= 1.33, Linux >= 6.3,
 *   containerd >= 2.0, and cgroup v2 with containerd >= 2.1 `cgroup_writable` for the limits
 *   (on cgroup v1 the executor refuses to start: the limits cannot be applied there).
 * - `Privileged`: `privileged: true`, the last resort.
 */
export const EXECUTOR_SECURITY_MODES = ['Standard', 'UserNamespace', 'Privileged'] as const;
export const ExecutorSecurityModeSchema = z.enum(EXECUTOR_SECURITY_MODES);
export type ExecutorSecurityMode = z.infer<typeof ExecutorSecurityModeSchema>;

export const ExecutorSpecSchema = z.strictObject({
  replicas: z.number().int().min(0).max(100).default(2).describe('Executor pods.'),
  resources: ResourceRequirementsSchema.optional(),
  /** Calls one executor pod runs at once; beyond that it refuses with 429. */
  maxConcurrency: z
    .number()
    .int()
    .min(1)
    .max(256)
    .default(8)
    .describe('Calls one executor pod runs at once; beyond that it answers 429.'),
  /** Pre-started single-use sandboxes kept ready per runtime. */
  warmPoolSize: z
    .number()
    .int()
    .min(0)
    .max(64)
    .default(2)
    .describe('Pre-started single-use sandboxes kept ready per runtime.'),
  /** Unset: the operator's default (chart value executor.securityMode, itself Standard). */
  /**
   * The executor's container image; unset: the operator's default (the chart's executor image).
   * An image built FROM the sandbox image to carry extra packages (sandbox-image/README.md).
   */
  image: z
    .string()
    .min(1)
    .max(512)
    .regex(/^[a-z0-9]([-a-z0-9._/:@]*[A-Za-z0-9])?$/, {
      message: 'must be an image reference (registry/name:tag or name@sha256:digest)',
    })
    .optional()
    .describe(
      "Executor image, e.g. one built FROM the sandbox image with extra packages; unset: the operator's default.",
    ),
  securityMode: ExecutorSecurityModeSchema.optional().describe(
    "Executor pod privileges: Standard (SYS_ADMIN in the node's user namespace), " +
      'UserNamespace (hostUsers: false; needs cgroup v2 with a writable delegated cgroup), or ' +
      "Privileged (last resort). Unset: the operator's default.",
  ),
});

/** The Secret data key of the audit signing key unless signingKeySecretRef.key names another. */
export const AUDIT_SIGNING_KEY_DEFAULT_KEY = 'ed25519.key';

export const AuditSpecSchema = z.strictObject({
  /** Record raw arguments in the decision log (default: only their SHA-256). */
  recordArguments: z
    .boolean()
    .default(false)
    .describe('Record raw arguments in the decision log (default: only their SHA-256).'),
  /**
   * An Ed25519 private key (PEM PKCS#8, from `mcpworks audit keygen`) in a Secret of the same
   * namespace: the gateway signs every decision record with it, so `mcpworks audit verify
   * --public-key` tells its records from fabricated ones. Mounted read-only into the gateway
   * pods; they do not start without it (a missing Secret or key, or a key that is not Ed25519).
   */
  signingKeySecretRef: z
    .strictObject({
      name: DnsSubdomainSchema.describe('The Secret, in the namespace of the McpServer.'),
      key: SecretDataKeySchema.default(AUDIT_SIGNING_KEY_DEFAULT_KEY).describe(
        `The Secret data key holding the PEM; default ${AUDIT_SIGNING_KEY_DEFAULT_KEY}.`,
      ),
    })
    .optional()
    .describe(
      'Sign every decision record with the Ed25519 private key (PEM PKCS#8) in this Secret of the same namespace; `mcpworks audit verify --public-key` checks the signatures. Gateway pods do not start without it.',
    ),
});

export const McpServerSpecSchema = z.strictObject({
  tools: keyedList(ToolSchema, 'name', { min: 1, max: 128 }).describe(
    'The tools this server serves; each call runs in a fresh sandbox.',
  ),
  /** Required: a server has no implicit way in (anonymous access is opt-in, never a default). */
  auth: AuthSchema.describe(
    'How callers authenticate: at least one of apiKeys, oidc, serviceAccountTokens, or anonymous.enabled.',
  ),
  gateway: GatewaySpecSchema.default(GatewaySpecSchema.parse({})),
  executor: ExecutorSpecSchema.default(ExecutorSpecSchema.parse({})),
  audit: AuditSpecSchema.default(AuditSpecSchema.parse({})),
});
export type McpServerSpec = z.infer<typeof McpServerSpecSchema>;

export const McpServerStatusSchema = z.strictObject({
  observedGeneration: z.number().int().min(0).optional(),
  conditions: ConditionsSchema.optional(),
  endpoint: text(2048).optional(),
  tools: z.number().int().min(0).optional(),
  /** `AgentPolicy <ns>/<name>` and `ClusterAgentPolicy <name>` entries that select this server. */
  policies: z.array(text(512)).max(512).optional(),
});
export type McpServerStatus = z.infer<typeof McpServerStatusSchema>;

export const McpServerSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('McpServer'),
  metadata: ObjectMetaSchema.extend({ name: McpServerNameSchema }),
  spec: McpServerSpecSchema,
  status: McpServerStatusSchema.optional(),
});
export type McpServer = z.infer<typeof McpServerSchema>;

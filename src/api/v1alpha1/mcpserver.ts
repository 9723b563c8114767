import { z } from 'zod';
import {
  API_VERSION,
  ConditionSchema,
  DnsLabelSchema,
  DnsSubdomainSchema,
  ObjectMetaSchema,
} from './common.ts';

export const RUNTIMES = ['python', 'node', 'bash'] as const;
export const RuntimeSchema = z.enum(RUNTIMES);
export type Runtime = z.infer<typeof RuntimeSchema>;

/** MCP tool names: a letter first, then letters, digits, `_`, `-` or `.`; at most 64 characters. */
export const TOOL_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_.-]{0,63}$';
export const ToolNameSchema = z.string().regex(new RegExp(TOOL_NAME_PATTERN), {
  message: 'must start with a letter and contain only letters, digits, "_", "-" or "." (max 64)',
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

export const ToolLimitsSchema = z.object({
  memoryMiB: boundedInt(LIMIT_BOUNDS.memoryMiB),
  cpuMillicores: boundedInt(LIMIT_BOUNDS.cpuMillicores),
  pids: boundedInt(LIMIT_BOUNDS.pids),
  maxOutputBytes: boundedInt(LIMIT_BOUNDS.maxOutputBytes),
  tmpfsMiB: boundedInt(LIMIT_BOUNDS.tmpfsMiB),
});
export type ToolLimits = z.infer<typeof ToolLimitsSchema>;

export const EnvVarSchema = z.object({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'must be a valid environment variable name' }).max(128),
  value: z.string().max(4096),
});

export const ConfigMapKeyRefSchema = z.object({
  name: DnsSubdomainSchema,
  key: z.string().min(1).max(253).regex(/^[-._a-zA-Z0-9]+$/, { message: 'must be a valid ConfigMap key' }),
});

export const ToolSchema = z.object({
  name: ToolNameSchema,
  description: z.string().min(1).max(1024),
  runtime: RuntimeSchema,
  /** Source inline. Exactly one of `code` and `codeFrom`. */
  code: z.string().min(1).max(65536).optional(),
  codeFrom: z.object({ configMapKeyRef: ConfigMapKeyRefSchema }).optional(),
  /** JSON Schema of the arguments, as MCP's tools/list publishes it. */
  inputSchema: z.record(z.string(), z.unknown()).default({ type: 'object' }),
  timeoutSeconds: boundedInt(LIMIT_BOUNDS.timeoutSeconds),
  limits: ToolLimitsSchema.default(ToolLimitsSchema.parse({})),
  env: z.array(EnvVarSchema).max(32).optional(),
});
export type Tool = z.infer<typeof ToolSchema>;

export const SecretKeyRefSchema = z.object({
  name: DnsSubdomainSchema,
  key: z.string().min(1).max(253).optional(),
});

export const AuthSchema = z.object({
  /** API keys: a Secret whose entries map scrypt hashes of keys to agents (see docs). */
  apiKeys: z.object({ secretRef: SecretKeyRefSchema }).optional(),
  oidc: z
    .object({
      issuer: z.url({ protocol: /^https$/ }),
      audiences: z.array(z.string().min(1).max(512)).min(1).max(16),
      agentClaim: z.string().min(1).max(128).default('sub'),
      groupsClaim: z.string().min(1).max(128).default('groups'),
      requiredScopes: z.array(z.string().min(1).max(128)).max(16).optional(),
      clockSkewSeconds: z.number().int().min(0).max(300).default(60),
    })
    .optional(),
  serviceAccountTokens: z
    .object({ audiences: z.array(z.string().min(1).max(512)).min(1).max(16) })
    .optional(),
  anonymous: z
    .object({ enabled: z.boolean().default(false) })
    .default({ enabled: false }),
});
export type Auth = z.infer<typeof AuthSchema>;

const IntOrStringSchema = z.union([z.number().int(), z.string()]);
export const ResourceRequirementsSchema = z.object({
  requests: z.record(z.string(), IntOrStringSchema).optional(),
  limits: z.record(z.string(), IntOrStringSchema).optional(),
});

export const GatewaySpecSchema = z.object({
  replicas: z.number().int().min(0).max(50).default(2),
  resources: ResourceRequirementsSchema.optional(),
});

export const ExecutorSpecSchema = z.object({
  replicas: z.number().int().min(0).max(100).default(2),
  resources: ResourceRequirementsSchema.optional(),
  /** Calls one executor pod runs at once; beyond that it refuses with 429. */
  maxConcurrency: z.number().int().min(1).max(256).default(8),
  /** Pre-started single-use sandboxes kept ready per runtime. */
  warmPoolSize: z.number().int().min(0).max(64).default(2),
});

export const AuditSpecSchema = z.object({
  /** Record raw arguments in the decision log (default: only their SHA-256). */
  recordArguments: z.boolean().default(false),
});

export const McpServerSpecSchema = z.object({
  tools: z.array(ToolSchema).min(1).max(128),
  auth: AuthSchema.default({ anonymous: { enabled: false } }),
  gateway: GatewaySpecSchema.default(GatewaySpecSchema.parse({})),
  executor: ExecutorSpecSchema.default(ExecutorSpecSchema.parse({})),
  audit: AuditSpecSchema.default(AuditSpecSchema.parse({})),
});
export type McpServerSpec = z.infer<typeof McpServerSpecSchema>;

export const McpServerStatusSchema = z.object({
  observedGeneration: z.number().int().optional(),
  conditions: z.array(ConditionSchema).optional(),
  endpoint: z.string().optional(),
  tools: z.number().int().optional(),
  policies: z.array(z.string()).optional(),
});
export type McpServerStatus = z.infer<typeof McpServerStatusSchema>;

export const McpServerSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('McpServer'),
  metadata: ObjectMetaSchema.extend({ name: DnsLabelSchema }),
  spec: McpServerSpecSchema,
  status: McpServerStatusSchema.optional(),
});
export type McpServer = z.infer<typeof McpServerSchema>;

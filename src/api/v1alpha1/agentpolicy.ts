import { z } from 'zod';
import {
  API_VERSION,
  ConditionsSchema,
  DnsLabelSchema,
  LabelSelectorSchema,
  ObjectMetaSchema,
} from './common.ts';
import { checkConditionSyntax } from './conditions.ts';
import { accountFor, text, withRules } from './rules.ts';
import { EgressRuleSchema } from './mcpserver.ts';
import { CLUSTER_POLICY_SPEC_RULES, SERVER_SELECTOR_RULES, SUBJECT_RULES } from './validations.ts';

export const SUBJECT_KINDS = ['Agent', 'Group', 'ServiceAccount', 'Anonymous'] as const;
export const SubjectKindSchema = z.enum(SUBJECT_KINDS);
export type SubjectKind = z.infer<typeof SubjectKindSchema>;

/**
 * Who a rule is about. `name` may be `*` for every Agent, Group or ServiceAccount; a
 * ServiceAccount subject names its namespace (default: the AgentPolicy's own; in a
 * ClusterAgentPolicy, every namespace); Anonymous has no name.
 */
export const PolicySubjectSchema = withRules(
  z.strictObject({
    kind: SubjectKindSchema,
    name: text(253, 1)
      .optional()
      .describe('Agent, group or ServiceAccount name; "*" for all. Anonymous has none.'),
    namespace: DnsLabelSchema.optional().describe(
      "ServiceAccount namespace (default: the policy's own; in a ClusterAgentPolicy, any).",
    ),
  }),
  SUBJECT_RULES,
);
export type PolicySubject = z.infer<typeof PolicySubjectSchema>;

export const EFFECTS = ['Allow', 'Deny'] as const;
export const EffectSchema = z.enum(EFFECTS);
export type Effect = z.infer<typeof EffectSchema>;

export const METHODS = ['tools/call', 'tools/list'] as const;
export const MethodSchema = z.enum(METHODS);
export type Method = z.infer<typeof MethodSchema>;

/** Glob over tool names (`*`, `?`, `[a-z]`, `{a,b}`); lower case, like the names it matches. */
export const TOOL_PATTERN = '^[a-z0-9_.*?{},\\[\\]!-]{1,128}$';
export const ToolPatternSchema = z.string().min(1).max(128).regex(new RegExp(TOOL_PATTERN), {
  message:
    'must be a lower-case glob of a-z, 0-9, "_", "-", ".", "*", "?", "[...]" or "{a,b}" (tool names are lower case)',
});

/**
 * A CEL expression over `args`, `tool` and `subject`. Only the controller can check that it
 * compiles (the one entry of CONTROLLER_ONLY_RULES): the API server checks its bounds.
 */
export const ConditionExpressionSchema = accountFor(
  text(2048, 1).superRefine((expression, ctx) => {
    const problem = checkConditionSyntax(expression);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  }),
);

export const PolicyRuleSchema = z.strictObject({
  effect: EffectSchema.describe(
    'Allow or Deny. A matching Deny beats every Allow; no match is a deny.',
  ),
  subjects: z
    .array(PolicySubjectSchema)
    .min(1)
    .max(32)
    .describe('Who the rule is about (any of them).'),
  tools: z.array(ToolPatternSchema).min(1).max(64).describe('Tool name globs the rule covers.'),
  /** The rule matches only when every condition is true. A Deny needs none. */
  conditions: z
    .array(ConditionExpressionSchema)
    .max(16)
    .optional()
    .describe('CEL over args, tool and subject; the rule matches only when all are true.'),
  /** Copied into every decision this rule makes. */
  reason: text(512, 1).describe('Why; copied into every decision the rule makes.'),
});
export type PolicyRule = z.infer<typeof PolicyRuleSchema>;

/** Which McpServers a policy applies to: by name, by labels, or both (an OR). */
export const ServerSelectorSchema = withRules(
  z.strictObject({
    names: z.array(DnsLabelSchema).max(64).optional(),
    selector: LabelSelectorSchema.optional(),
  }),
  SERVER_SELECTOR_RULES,
);

export const AgentPolicySpecSchema = z.strictObject({
  servers: ServerSelectorSchema.describe(
    'Which McpServers (in this namespace for an AgentPolicy) the policy applies to: by name, labels, or both.',
  ),
  /** Evaluate and record the would-be effect without enforcing it (safe roll-out). */
  auditOnly: z
    .boolean()
    .default(false)
    .describe('Record the would-be decision without enforcing it (safe roll-out).'),
  rules: z
    .array(PolicyRuleSchema)
    .min(1)
    .max(128)
    .describe('Evaluated together; order does not matter.'),
});
export type AgentPolicySpec = z.infer<typeof AgentPolicySpecSchema>;

/**
 * An egress guardrail: hosts that no tool of the selected servers may reach, whatever the tool
 * declares (deny wins over a tool's own `egress`). The gateway sends the matching entries with
 * every call (ToolCallRequest.egressDenied) and the executor's proxy refuses those hosts with
 * reason `policy-denied` (docs/policy.md, "Egress guardrails").
 */
export const EgressDenySchema = z.strictObject({
  hosts: z
    .array(EgressRuleSchema.shape.host)
    .min(1)
    .max(64)
    .describe("Host patterns as in a tool's egress rules: a DNS name or *.suffix."),
  tools: z
    .array(ToolPatternSchema)
    .min(1)
    .max(64)
    .optional()
    .describe('Tool name globs the guardrail covers; default every tool.'),
  reason: text(512, 1).describe("Why; copied into every refused attempt's record."),
});
export type EgressDeny = z.infer<typeof EgressDenySchema>;

/**
 * A ClusterAgentPolicy's ServiceAccount subject without a namespace matches that ServiceAccount
 * name in every namespace. It may carry only egress guardrails (`rules` empty or absent), but not
 * neither (CLUSTER_POLICY_SPEC_RULES).
 */
export const ClusterAgentPolicySpecSchema = withRules(
  AgentPolicySpecSchema.extend({
    rules: z
      .array(PolicyRuleSchema)
      .max(128)
      .optional()
      .describe('Evaluated together; order does not matter. May be empty when egressDeny is set.'),
    /** Namespaces whose servers this policy applies to; empty selects all namespaces. */
    namespaceSelector: LabelSelectorSchema.default({}).describe(
      'Namespaces whose servers this policy applies to; empty selects all.',
    ),
    egressDeny: z
      .array(EgressDenySchema)
      .max(64)
      .optional()
      .describe(
        'Hosts no tool of the selected servers may reach, whatever the tool declares (deny wins). Not enforced when auditOnly.',
      ),
  }),
  CLUSTER_POLICY_SPEC_RULES,
);
export type ClusterAgentPolicySpec = z.infer<typeof ClusterAgentPolicySpecSchema>;

export const PolicyStatusSchema = z.strictObject({
  observedGeneration: z.number().int().min(0).optional(),
  conditions: ConditionsSchema.optional(),
  rules: z.number().int().min(0).optional(),
});
export type PolicyStatus = z.infer<typeof PolicyStatusSchema>;

export const AgentPolicySchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('AgentPolicy'),
  metadata: ObjectMetaSchema,
  spec: AgentPolicySpecSchema,
  status: PolicyStatusSchema.optional(),
});
export type AgentPolicy = z.infer<typeof AgentPolicySchema>;

export const ClusterAgentPolicySchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('ClusterAgentPolicy'),
  metadata: ObjectMetaSchema,
  spec: ClusterAgentPolicySpecSchema,
  status: PolicyStatusSchema.optional(),
});
export type ClusterAgentPolicy = z.infer<typeof ClusterAgentPolicySchema>;

export type AnyAgentPolicy = AgentPolicy | ClusterAgentPolicy;

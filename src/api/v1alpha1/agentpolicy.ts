import { z } from 'zod';
import {
  API_VERSION,
  ConditionSchema,
  DnsLabelSchema,
  LabelSelectorSchema,
  ObjectMetaSchema,
} from './common.ts';

export const SUBJECT_KINDS = ['Agent', 'Group', 'ServiceAccount', 'Anonymous'] as const;
export const SubjectKindSchema = z.enum(SUBJECT_KINDS);
export type SubjectKind = z.infer<typeof SubjectKindSchema>;

/**
 * Who a rule is about. `name` may be `*` for every Agent, Group or ServiceAccount; a
 * ServiceAccount subject names its namespace (default: the policy's own); Anonymous has no name.
 */
export const PolicySubjectSchema = z.object({
  kind: SubjectKindSchema,
  name: z.string().min(1).max(253).optional(),
  namespace: DnsLabelSchema.optional(),
});
export type PolicySubject = z.infer<typeof PolicySubjectSchema>;

export const EFFECTS = ['Allow', 'Deny'] as const;
export const EffectSchema = z.enum(EFFECTS);
export type Effect = z.infer<typeof EffectSchema>;

export const METHODS = ['tools/call', 'tools/list'] as const;
export const MethodSchema = z.enum(METHODS);
export type Method = z.infer<typeof MethodSchema>;

/** Glob over tool names (`*`, `?`, `[a-z]`, `{a,b}`). */
export const TOOL_PATTERN = '^[A-Za-z0-9_.*?{},\\[\\]!-]{1,128}$';
export const ToolPatternSchema = z.string().regex(new RegExp(TOOL_PATTERN), {
  message: 'must be a glob of letters, digits, "_", "-", ".", "*", "?", "[...]" or "{a,b}"',
});

export const PolicyRuleSchema = z.object({
  effect: EffectSchema,
  subjects: z.array(PolicySubjectSchema).min(1).max(64),
  tools: z.array(ToolPatternSchema).min(1).max(64),
  /** CEL expressions over `args`, `tool` and `subject`; the rule matches when all are true. */
  conditions: z.array(z.string().min(1).max(2048)).max(16).optional(),
  /** Copied into every decision this rule makes. */
  reason: z.string().min(1).max(512),
});
export type PolicyRule = z.infer<typeof PolicyRuleSchema>;

/** Which McpServers a policy applies to: by name, by labels, or both (an OR). */
export const ServerSelectorSchema = z.object({
  names: z.array(DnsLabelSchema).max(64).optional(),
  selector: LabelSelectorSchema.optional(),
});

export const AgentPolicySpecSchema = z.object({
  servers: ServerSelectorSchema,
  /** Evaluate and record the would-be effect without enforcing it (safe roll-out). */
  auditOnly: z.boolean().default(false),
  rules: z.array(PolicyRuleSchema).min(1).max(256),
});
export type AgentPolicySpec = z.infer<typeof AgentPolicySpecSchema>;

export const ClusterAgentPolicySpecSchema = AgentPolicySpecSchema.extend({
  /** Namespaces whose servers this policy applies to; empty selects all namespaces. */
  namespaceSelector: LabelSelectorSchema.default({}),
});
export type ClusterAgentPolicySpec = z.infer<typeof ClusterAgentPolicySpecSchema>;

export const PolicyStatusSchema = z.object({
  observedGeneration: z.number().int().optional(),
  conditions: z.array(ConditionSchema).optional(),
  rules: z.number().int().optional(),
});
export type PolicyStatus = z.infer<typeof PolicyStatusSchema>;

export const AgentPolicySchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('AgentPolicy'),
  metadata: ObjectMetaSchema,
  spec: AgentPolicySpecSchema,
  status: PolicyStatusSchema.optional(),
});
export type AgentPolicy = z.infer<typeof AgentPolicySchema>;

export const ClusterAgentPolicySchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('ClusterAgentPolicy'),
  metadata: ObjectMetaSchema,
  spec: ClusterAgentPolicySpecSchema,
  status: PolicyStatusSchema.optional(),
});
export type ClusterAgentPolicy = z.infer<typeof ClusterAgentPolicySchema>;

export type AnyAgentPolicy = AgentPolicy | ClusterAgentPolicy;

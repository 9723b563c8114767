import { z } from 'zod';

export const GROUP = 'mcpworks.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** RFC 1123 DNS label: Kubernetes object and namespace names of the objects we reference. */
export const DnsLabelSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase RFC 1123 label');

/** RFC 1123 subdomain: names of Secrets and ConfigMaps. */
export const DnsSubdomainSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be a lowercase RFC 1123 subdomain',
  );

export const LabelSelectorRequirementSchema = z.object({
  key: z.string().min(1).max(317),
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
  values: z.array(z.string().max(63)).max(64).optional(),
});

/** metav1.LabelSelector. An empty selector selects everything. */
export const LabelSelectorSchema = z.object({
  matchLabels: z.record(z.string(), z.string().max(63)).optional(),
  matchExpressions: z.array(LabelSelectorRequirementSchema).max(32).optional(),
});
export type LabelSelector = z.infer<typeof LabelSelectorSchema>;

export const ConditionSchema = z.object({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: z.string(),
  reason: z.string().min(1).max(1024),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof ConditionSchema>;

/** The subset of metav1.ObjectMeta that manifests carry and the code reads. */
export const ObjectMetaSchema = z.looseObject({
  name: DnsSubdomainSchema,
  namespace: DnsLabelSchema.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  generation: z.number().int().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
});
export type ObjectMeta = z.infer<typeof ObjectMetaSchema>;

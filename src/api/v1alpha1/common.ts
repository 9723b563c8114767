import { z } from 'zod';
import { boundedMap, text, withRules } from './rules.ts';
import { LABEL_KEY_PATTERN, LABEL_REQUIREMENT_RULES, MATCH_LABELS_RULES } from './validations.ts';

export const GROUP = 'mcpworks.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS_SUBDOMAIN_PATTERN =
  '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

/** RFC 1123 DNS label: Kubernetes object and namespace names of the objects we reference. */
export const DnsLabelSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(new RegExp(DNS_LABEL_PATTERN), 'must be a lowercase RFC 1123 label');

/** RFC 1123 subdomain: names of Secrets and ConfigMaps. */
export const DnsSubdomainSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(new RegExp(DNS_SUBDOMAIN_PATTERN), 'must be a lowercase RFC 1123 subdomain');

/** A label key (`prefix/name`) or value, as metav1 accepts them. */
const LabelKeySchema = z.string().min(1).max(317).regex(new RegExp(LABEL_KEY_PATTERN), {
  message: 'must be a label key: an optional DNS subdomain prefix and "/", then a name',
});
const LabelValueSchema = z
  .string()
  .max(63)
  .regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/, { message: 'must be a label value' });

export const LabelSelectorRequirementSchema = withRules(
  z.strictObject({
    key: LabelKeySchema,
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z.array(LabelValueSchema).max(64).optional(),
  }),
  LABEL_REQUIREMENT_RULES,
);

/** metav1.LabelSelector. An empty selector selects everything. */
export const LabelSelectorSchema = z.strictObject({
  // Keys are checked by a rule: a CRD cannot constrain map keys with a schema.
  matchLabels: boundedMap(
    withRules(z.record(z.string(), LabelValueSchema), MATCH_LABELS_RULES),
    64,
  ).optional(),
  matchExpressions: z.array(LabelSelectorRequirementSchema).max(32).optional(),
});
export type LabelSelector = z.infer<typeof LabelSelectorSchema>;

export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

/** metav1.Condition, with its upstream bounds. */
export const ConditionSchema = z.strictObject({
  type: text(316, 1),
  status: z.enum(CONDITION_STATUSES),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: z.iso.datetime({ offset: true }),
  reason: text(1024, 1),
  message: text(32768),
});
export type Condition = z.infer<typeof ConditionSchema>;

/** The conditions list of a status: one entry per type (a list-map keyed by `type`). */
export const ConditionsSchema = z
  .array(ConditionSchema)
  .max(16)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });

/**
 * The subset of metav1.ObjectMeta that manifests carry and the code reads. Loose: the API server
 * owns the rest (managedFields, ownerReferences, ...). The CRD does not take this schema: the API
 * server validates metadata itself (see crds.ts).
 */
export const ObjectMetaSchema = z.looseObject({
  name: DnsSubdomainSchema,
  namespace: DnsLabelSchema.optional(),
  // Validated as the API server validates every object's labels and annotation keys.
  labels: z.record(LabelKeySchema, LabelValueSchema).optional(),
  annotations: z.record(LabelKeySchema, z.string()).optional(),
  generation: z.number().int().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
});
export type ObjectMeta = z.infer<typeof ObjectMetaSchema>;

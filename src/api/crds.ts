/**
 * The CustomResourceDefinitions, generated from the zod schemas so the API server and the run-time
 * validation cannot drift. z.toJSONSchema gives JSON Schema 2020-12; `toStructural` turns it into
 * the OpenAPI v3 structural form apiextensions.k8s.io/v1 demands, and refuses (throws) on any node
 * it cannot express or that is unbounded, so a schema change that would weaken the CRD fails the
 * build instead of shipping.
 */
import { stringify } from 'yaml';
import { z } from 'zod';
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import {
  AgentPolicySpecSchema,
  ClusterAgentPolicySpecSchema,
  DNS_LABEL_PATTERN,
  DNS_SUBDOMAIN_PATTERN,
  GROUP,
  isAccountedCheck,
  isRecord,
  MCPSERVER_NAME_MAX,
  McpServerSpecSchema,
  McpServerStatusSchema,
  PolicyStatusSchema,
  VERSION,
} from './v1alpha1/index.ts';

type JsonSchema = Record<string, unknown>;

/** Keywords structural schemas may carry; anything else zod emits is an error, not silently lost. */
const KEPT = new Set([
  'type',
  'description',
  'properties',
  'required',
  'items',
  'additionalProperties',
  'default',
  'enum',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'nullable',
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
]);
/** Formats the API server checks, whose zod regex would only duplicate (and not be RE2). */
const FORMATS_WITHOUT_PATTERN = new Set(['date-time']);

export class CrdSchemaError extends Error {
  constructor(path: string, problem: string) {
    super(`${path || '<root>'}: ${problem}`);
    this.name = 'CrdSchemaError';
  }
}

/** zod → structural OpenAPI v3 for one object schema (spec or status). */
export function structuralSchema(schema: z.ZodType, path: string): JsonSchema {
  assertRefinementsAccounted(schema, path, new WeakSet());
  const json = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'throw',
    target: 'draft-2020-12',
  });
  return toStructural(json, path);
}

export function toStructural(node: JsonSchema, path: string): JsonSchema {
  if ('$ref' in node || '$defs' in node)
    throw new CrdSchemaError(path, 'references are not allowed; inline the schema');
  if (Array.isArray(node.anyOf)) return intOrString(node, path);
  if ('const' in node) node = { ...node, enum: [node.const] };
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema' || key === 'const') continue;
    if (key === 'propertyNames') {
      // A CRD cannot constrain map keys: a key schema would be enforced by zod only. Use a rule.
      if (JSON.stringify(value) !== '{"type":"string"}') {
        throw new CrdSchemaError(
          path,
          'map keys cannot be constrained in a CRD; check them with a rule',
        );
      }
      continue;
    }
    if (key === 'additionalProperties' && value === false) continue; // strict objects: the API server prunes or rejects
    if (key === 'additionalProperties' && isEmptySchema(value)) continue;
    if (!KEPT.has(key))
      throw new CrdSchemaError(path, `keyword "${key}" has no structural equivalent`);
    out[key] = value;
  }
  if (typeof out.format === 'string' && FORMATS_WITHOUT_PATTERN.has(out.format)) delete out.pattern;
  dropSafeIntegerBounds(out);

  const preserve = out['x-kubernetes-preserve-unknown-fields'] === true;
  if (typeof out.type !== 'string') throw new CrdSchemaError(path, 'every node needs a type');
  if (isRecord(out.properties)) {
    out.properties = Object.fromEntries(
      Object.entries(out.properties).map(([name, child]) => [
        name,
        toStructural(asSchema(child, path), `${path}.${name}`),
      ]),
    );
  }
  if (out.items !== undefined) out.items = toStructural(asSchema(out.items, path), `${path}[*]`);
  if (out.additionalProperties !== undefined) {
    out.additionalProperties = toStructural(asSchema(out.additionalProperties, path), `${path}[*]`);
  }
  assertBounded(out, path, preserve);
  return out;
}

interface ZodDefNode {
  _zod: {
    def: Record<string, unknown> & {
      type: string;
      checks?: Array<{ _zod: { def: { check: string } } }>;
    };
  };
}

/**
 * z.toJSONSchema silently drops refinements. Each one must be accounted for (`accountFor` in
 * rules.ts: it has a CRD counterpart, or is the documented controller-only check), else the API
 * server would accept what zod rejects.
 */
function assertRefinementsAccounted(schema: unknown, path: string, seen: WeakSet<object>): void {
  if (typeof schema !== 'object' || schema === null || seen.has(schema)) return;
  seen.add(schema);
  const def = (schema as ZodDefNode)._zod.def;
  for (const check of def.checks ?? []) {
    if (check._zod.def.check === 'custom' && !isAccountedCheck(check)) {
      throw new CrdSchemaError(path, 'a zod refinement without a CRD counterpart (see accountFor)');
    }
  }
  const child = (value: unknown, suffix: string) =>
    assertRefinementsAccounted(value, `${path}${suffix}`, seen);
  switch (def.type) {
    case 'object':
      for (const [name, value] of Object.entries(def.shape as Record<string, unknown>))
        child(value, `.${name}`);
      break;
    case 'array':
      child(def.element, '[*]');
      break;
    case 'record':
      child(def.keyType, '{key}');
      child(def.valueType, '[*]');
      break;
    case 'union':
      for (const option of def.options as unknown[]) child(option, '');
      break;
    case 'pipe':
      child(def.in, '');
      child(def.out, '');
      break;
    default:
      if ('innerType' in def) child(def.innerType, '');
  }
}

/** `z.union([z.number().int(), z.string()])` → Kubernetes' int-or-string (e.g. quantities). */
function intOrString(node: JsonSchema, path: string): JsonSchema {
  const branches = node.anyOf as JsonSchema[];
  const types = branches.map((b) => b.type).sort();
  if (branches.length !== 2 || types[0] !== 'integer' || types[1] !== 'string') {
    throw new CrdSchemaError(path, 'unions other than integer-or-string cannot be structural');
  }
  const text = branches.find((b) => b.type === 'string') ?? {};
  const integer = branches.find((b) => b.type === 'integer') ?? {};
  const out: JsonSchema = {
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    'x-kubernetes-int-or-string': true,
  };
  if (typeof integer.minimum === 'number') out.minimum = integer.minimum;
  for (const key of ['pattern', 'maxLength'] as const)
    if (text[key] !== undefined) out[key] = text[key];
  if (node.default !== undefined) out.default = node.default;
  return out;
}

/** CEL cost estimation and etcd both need every string, list and map to be bounded. */
function assertBounded(node: JsonSchema, path: string, preserve: boolean): void {
  if (preserve) return;
  if (
    node.type === 'string' &&
    node.maxLength === undefined &&
    node.enum === undefined &&
    node.format !== 'date-time'
  ) {
    throw new CrdSchemaError(path, 'string without maxLength');
  }
  if (node.type === 'array' && node.maxItems === undefined)
    throw new CrdSchemaError(path, 'array without maxItems');
  if (
    node.type === 'object' &&
    node.additionalProperties !== undefined &&
    node.maxProperties === undefined
  ) {
    throw new CrdSchemaError(path, 'map without maxProperties');
  }
}

function dropSafeIntegerBounds(node: JsonSchema): void {
  if (node.maximum === Number.MAX_SAFE_INTEGER) delete node.maximum;
  if (node.minimum === Number.MIN_SAFE_INTEGER) delete node.minimum;
}

function isEmptySchema(value: unknown): boolean {
  return isRecord(value) && Object.keys(value).length === 0;
}

function asSchema(value: unknown, path: string): JsonSchema {
  if (!isRecord(value)) throw new CrdSchemaError(path, 'schema node is not an object');
  return value;
}

interface KindSpec {
  kind: string;
  plural: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  /** Restrictions on metadata.name beyond the API server's own (the only metadata a CRD may restrict). */
  name?: { maxLength: number; pattern: string };
  columns: Array<{
    name: string;
    type: string;
    jsonPath: string;
    description: string;
    priority?: number;
  }>;
}

const AGE = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Time since creation',
};
const POLICY_COLUMNS = [
  {
    name: 'Accepted',
    type: 'string',
    jsonPath: '.status.conditions[?(@.type=="Accepted")].status',
    description: 'Whether the controller accepted the policy',
  },
  {
    name: 'Rules',
    type: 'integer',
    jsonPath: '.status.rules',
    description: 'Number of rules in force',
  },
  {
    name: 'Audit-Only',
    type: 'boolean',
    jsonPath: '.spec.auditOnly',
    description: 'Decisions are recorded, not enforced',
    priority: 1,
  },
  AGE,
];

export const KINDS: readonly KindSpec[] = [
  {
    kind: 'McpServer',
    plural: 'mcpservers',
    shortNames: ['mcps'],
    scope: 'Namespaced',
    description:
      'An MCP server: tools run one call per fresh sandbox behind an authenticating, policy-enforcing gateway.',
    spec: McpServerSpecSchema,
    status: McpServerStatusSchema,
    name: { maxLength: MCPSERVER_NAME_MAX, pattern: DNS_LABEL_PATTERN },
    columns: [
      {
        name: 'Ready',
        type: 'string',
        jsonPath: '.status.conditions[?(@.type=="Ready")].status',
        description: 'Whether the gateway and executor are serving',
      },
      {
        name: 'Tools',
        type: 'integer',
        jsonPath: '.status.tools',
        description: 'Number of tools served',
      },
      {
        name: 'Endpoint',
        type: 'string',
        jsonPath: '.status.endpoint',
        description: 'URL of the MCP endpoint',
      },
      {
        name: 'Reason',
        type: 'string',
        jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
        description: 'Why the server is (not) ready',
        priority: 1,
      },
      AGE,
    ],
  },
  {
    kind: 'AgentPolicy',
    plural: 'agentpolicies',
    shortNames: ['ap'],
    scope: 'Namespaced',
    description:
      'Which agents may call which tools of the McpServers in its namespace. Default deny; any matching Deny wins.',
    spec: AgentPolicySpecSchema,
    status: PolicyStatusSchema,
    name: { maxLength: 253, pattern: DNS_SUBDOMAIN_PATTERN },
    columns: POLICY_COLUMNS,
  },
  {
    kind: 'ClusterAgentPolicy',
    plural: 'clusteragentpolicies',
    shortNames: ['cap'],
    scope: 'Cluster',
    description:
      'Cluster-wide guardrails over McpServers in the selected namespaces; its Deny rules beat every Allow.',
    spec: ClusterAgentPolicySpecSchema,
    status: PolicyStatusSchema,
    name: { maxLength: 253, pattern: DNS_SUBDOMAIN_PATTERN },
    columns: POLICY_COLUMNS,
  },
];

export const CATEGORY = 'mcpworks';

export function buildCrd(k: KindSpec): V1CustomResourceDefinition {
  const metadata: JsonSchema = { type: 'object' };
  if (k.name !== undefined) {
    metadata.properties = {
      name: { type: 'string', maxLength: k.name.maxLength, pattern: k.name.pattern },
    };
  }
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${k.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'mcpworks', 'app.kubernetes.io/part-of': 'mcpworks' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.kind.toLowerCase(),
        shortNames: k.shortNames,
        categories: [CATEGORY],
      },
      scope: k.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.columns,
          schema: {
            openAPIV3Schema: {
              description: k.description,
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: {
                  type: 'string',
                  description: 'APIVersion of this object: mcpworks.io/v1alpha1',
                },
                kind: { type: 'string', description: `Kind of this object: ${k.kind}` },
                metadata,
                spec: structuralSchema(k.spec, `${k.kind}.spec`),
                status: structuralSchema(k.status, `${k.kind}.status`),
              },
            } as never,
          },
        },
      ],
    },
  };
}

export function buildCrds(): V1CustomResourceDefinition[] {
  return KINDS.map(buildCrd);
}

export const GENERATED_HEADER =
  '# Generated by `mcpworks crds --write` from src/api/v1alpha1. Do not edit.\n';

/** The file name kubebuilder would give the CRD: `<group>_<plural>.yaml`. */
export function crdFileName(crd: V1CustomResourceDefinition): string {
  return `${crd.spec.group}_${crd.spec.names.plural}.yaml`;
}

export function crdYaml(crd: V1CustomResourceDefinition): string {
  return GENERATED_HEADER + stringify(crd, { lineWidth: 0 });
}

/**
 * Every file `mcpworks crds --write` owns, relative to the repository root, with its content:
 * crds/ (the release artefact), config/crd/ (kustomize) and charts/mcpworks/crds/ (Helm).
 */
export function generatedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  const crds = buildCrds();
  for (const crd of crds) {
    files.set(`crds/${crdFileName(crd)}`, crdYaml(crd));
    files.set(`config/crd/bases/${crdFileName(crd)}`, crdYaml(crd));
    // Helm installs CRDs from the chart's crds/ directory: the same bytes again.
    files.set(`charts/mcpworks/crds/${crdFileName(crd)}`, crdYaml(crd));
  }
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: crds.map((crd) => `bases/${crdFileName(crd)}`),
  };
  files.set('config/crd/kustomization.yaml', GENERATED_HEADER + stringify(kustomization));
  return files;
}

/** All CRDs as one multi-document YAML stream (what `mcpworks crds` prints). */
export function crdsYaml(): string {
  return buildCrds()
    .map((crd) => `---\n${stringify(crd, { lineWidth: 0 })}`)
    .join('');
}

/**
 * Reads the manifests `mcpworks serve`, `mcpworks policy` and the tests load from files: the same
 * McpServer / AgentPolicy / ClusterAgentPolicy / Secret / ConfigMap documents a cluster would get,
 * validated and defaulted as the API server would (plus the checks only the controller can make).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { ErrorCode, McpworksError } from '../shared/errors.ts';
import type { AgentPolicy, ClusterAgentPolicy, McpServer } from './v1alpha1/index.ts';
import {
  AgentPolicySchema,
  ClusterAgentPolicySchema,
  isRecord,
  McpServerSchema,
  ObjectMetaSchema,
} from './v1alpha1/index.ts';

const DATA_KEY = z
  .string()
  .max(253)
  .regex(/^[-._a-zA-Z0-9]+$/, {
    message: 'must consist of alphanumeric characters, "-", "_" or "."',
  });
const BASE64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, { message: 'must be base64' });

/** v1 Secret as a manifest holds it; `stringData` is folded into `data` as the API server does. */
export const SecretManifestSchema = z
  .looseObject({
    apiVersion: z.literal('v1'),
    kind: z.literal('Secret'),
    metadata: ObjectMetaSchema,
    type: z.string().max(253).default('Opaque'),
    immutable: z.boolean().optional(),
    data: z.record(DATA_KEY, BASE64).optional(),
    stringData: z.record(DATA_KEY, z.string()).optional(),
  })
  .transform(({ stringData, ...secret }) => {
    const data: Record<string, string> = { ...secret.data };
    for (const [key, value] of Object.entries(stringData ?? {})) {
      data[key] = Buffer.from(value, 'utf8').toString('base64');
    }
    return { ...secret, data };
  });
export type SecretManifest = z.infer<typeof SecretManifestSchema>;

export const ConfigMapManifestSchema = z.looseObject({
  apiVersion: z.literal('v1'),
  kind: z.literal('ConfigMap'),
  metadata: ObjectMetaSchema,
  immutable: z.boolean().optional(),
  data: z.record(DATA_KEY, z.string()).default({}),
  binaryData: z.record(DATA_KEY, BASE64).optional(),
});
export type ConfigMapManifest = z.infer<typeof ConfigMapManifestSchema>;

/** The kinds manifests may hold, keyed by `apiVersion/kind`. */
const KINDS = {
  'mcpworks.io/v1alpha1/McpServer': { schema: McpServerSchema, namespaced: true },
  'mcpworks.io/v1alpha1/AgentPolicy': { schema: AgentPolicySchema, namespaced: true },
  'mcpworks.io/v1alpha1/ClusterAgentPolicy': {
    schema: ClusterAgentPolicySchema,
    namespaced: false,
  },
  'v1/Secret': { schema: SecretManifestSchema, namespaced: true },
  'v1/ConfigMap': { schema: ConfigMapManifestSchema, namespaced: true },
} as const;
export const SUPPORTED_KINDS = Object.keys(KINDS);

export type ManifestObject =
  McpServer | AgentPolicy | ClusterAgentPolicy | SecretManifest | ConfigMapManifest;

export interface Manifests {
  servers: McpServer[];
  policies: AgentPolicy[];
  clusterPolicies: ClusterAgentPolicy[];
  secrets: SecretManifest[];
  configMaps: ConfigMapManifest[];
}

export type ValidationResult<T = ManifestObject> =
  { ok: true; object: T } | { ok: false; errors: string[] };

/**
 * Validates and defaults one object by its apiVersion and kind. `errors` are
 * `<field path>: <message>` lines, with the API server's field paths (`spec.tools[1].name`).
 * Does not default metadata.namespace (the caller knows where the object came from).
 */
export function validateObject(obj: unknown): ValidationResult {
  if (!isRecord(obj)) return { ok: false, errors: ['<root>: must be an object'] };
  const { apiVersion, kind } = obj;
  const entry = KINDS[`${String(apiVersion)}/${String(kind)}` as keyof typeof KINDS];
  if (entry === undefined) {
    return {
      ok: false,
      errors: [
        `kind: unsupported ${JSON.stringify(apiVersion)} ${JSON.stringify(kind)}; expected one of ${SUPPORTED_KINDS.join(', ')}`,
      ],
    };
  }
  const proto = findProtoKey(obj, []);
  if (proto !== undefined)
    return { ok: false, errors: [`${proto}: "__proto__" is not a valid field name`] };
  const result = (entry.schema as z.ZodType<ManifestObject>).safeParse(pruneNulls(obj, []), {
    reportInput: true,
  });
  if (result.success) return { ok: true, object: result.data };
  return { ok: false, errors: formatZodIssues(result.error.issues) };
}

/**
 * The API server drops object fields whose value is null before defaulting and validation (none of
 * our fields is nullable), so `code: null` means "no code". Do the same, except inside a tool's
 * inputSchema, which is stored verbatim and where null is a legitimate JSON Schema value.
 */
function pruneNulls(value: unknown, path: readonly string[]): unknown {
  if (Array.isArray(value)) return value.map((item) => pruneNulls(item, [...path, '[]']));
  if (!isRecord(value)) return value;
  if (path.length === 4 && path[0] === 'spec' && path[1] === 'tools' && path[3] === 'inputSchema')
    return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (child === null) continue;
    out[key] = pruneNulls(child, [...path, key]);
  }
  return out;
}

/** Like validateObject, but throws one InvalidManifest error naming the object. */
export function parseObject(obj: unknown): ManifestObject {
  const result = validateObject(obj);
  if (result.ok) return result.object;
  throw new McpworksError(
    ErrorCode.InvalidManifest,
    result.errors.map((e) => `${describe(obj)}: ${e}`).join('\n'),
    {
      details: { problems: result.errors },
    },
  );
}

/**
 * zod issues as `path: message` lines in the API server's wording where one exists
 * (`Required value`, `Unsupported value`, unknown fields), one line per offending field.
 */
export function formatZodIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = formatPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${joinPath(path, key)}: unknown field "${key}"`);
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      lines.push(`${path}: Required value`);
    } else if (issue.code === 'invalid_value' && issue.values.length > 0) {
      const supported = issue.values.map((v) => JSON.stringify(v)).join(', ');
      lines.push(
        `${path}: Unsupported value: ${JSON.stringify(issue.input)}: supported values: ${supported}`,
      );
    } else {
      lines.push(`${path}: ${issue.message}`);
    }
  }
  return lines;
}

/** `['spec', 'tools', 1, 'name']` → `spec.tools[1].name`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out = joinPath(out, String(segment));
  }
  return out === '' ? '<root>' : out;
}

function joinPath(base: string, key: string): string {
  const safe = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (base === '' || base === '<root>') return safe;
  return safe.startsWith('[') ? `${base}${safe}` : `${base}.${safe}`;
}

/** `McpServer default/demo`, `ClusterAgentPolicy deny-shell`, for error messages. */
export function describe(obj: unknown): string {
  if (!isRecord(obj)) return '<not an object>';
  const kind = typeof obj.kind === 'string' ? obj.kind : '<no kind>';
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '<no name>';
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : undefined;
  return namespace === undefined ? `${kind} ${name}` : `${kind} ${namespace}/${name}`;
}

/** Files `kubectl apply -k` reads but that hold no resources; skipped when walking directories. */
const KUSTOMIZATION_FILES = new Set(['kustomization.yaml', 'kustomization.yml', 'Kustomization']);
const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
/** Far above anything the API server stores (etcd's object limit is 1.5 MiB), far below trouble. */
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

/**
 * Loads files and directories (not recursive, as `kubectl apply -f dir`; files sorted by name;
 * kustomization files skipped) of multi-document YAML or JSON. `kind: List` is expanded; empty
 * documents are skipped; namespaced objects without a namespace get "default"; a namespace on a
 * ClusterAgentPolicy is dropped as the API server drops it. Any problem, in any file, fails the
 * whole load with one InvalidManifest error listing them all.
 */
export async function loadManifests(paths: readonly string[]): Promise<Manifests> {
  const problems: string[] = [];
  const manifests: Manifests = {
    servers: [],
    policies: [],
    clusterPolicies: [],
    secrets: [],
    configMaps: [],
  };
  const seen = new Map<string, string>();

  for (const file of await expandPaths(paths, problems)) {
    for (const doc of await readDocuments(file, problems)) {
      const objects =
        isRecord(doc) && doc.kind === 'List' && Array.isArray(doc.items) ? doc.items : [doc];
      for (const raw of objects) {
        const obj = withDefaultNamespace(raw);
        const label = `${file}: ${describe(obj)}`;
        const result = validateObject(obj);
        if (!result.ok) {
          for (const error of result.errors) problems.push(`${label}: ${error}`);
          continue;
        }
        const identity = `${result.object.apiVersion}/${describe(result.object)}`;
        const previous = seen.get(identity);
        if (previous !== undefined) {
          problems.push(`${label}: duplicate object, already defined in ${previous}`);
          continue;
        }
        seen.set(identity, file);
        add(manifests, result.object);
      }
    }
  }
  if (problems.length > 0) {
    throw new McpworksError(
      ErrorCode.InvalidManifest,
      `invalid manifests:\n${problems.join('\n')}`,
      {
        details: { problems },
      },
    );
  }
  return manifests;
}

function add(manifests: Manifests, object: ManifestObject): void {
  switch (object.kind) {
    case 'McpServer':
      manifests.servers.push(object);
      break;
    case 'AgentPolicy':
      manifests.policies.push(object);
      break;
    case 'ClusterAgentPolicy':
      manifests.clusterPolicies.push(object);
      break;
    case 'Secret':
      manifests.secrets.push(object);
      break;
    case 'ConfigMap':
      manifests.configMaps.push(object);
      break;
  }
}

function withDefaultNamespace(raw: unknown): unknown {
  if (!isRecord(raw) || !isRecord(raw.metadata)) return raw;
  const entry = KINDS[`${String(raw.apiVersion)}/${String(raw.kind)}` as keyof typeof KINDS];
  if (entry === undefined) return raw;
  const metadata = { ...raw.metadata };
  if (entry.namespaced) metadata.namespace ??= 'default';
  else delete metadata.namespace;
  return { ...raw, metadata };
}

async function expandPaths(paths: readonly string[], problems: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch (error) {
      problems.push(`${path}: ${errorMessage(error)}`);
      continue;
    }
    if (!info.isDirectory()) {
      files.push(path);
      continue;
    }
    // Names, not dirents: a mounted ConfigMap's files are symlinks (into `..data/`), and the
    // dot-entries of that layout are not manifests.
    const candidates = (await readdir(path))
      .filter((name) => !name.startsWith('.'))
      .filter((name) => MANIFEST_EXTENSIONS.has(extname(name)) && !KUSTOMIZATION_FILES.has(name));
    const names: string[] = [];
    for (const name of candidates) {
      if ((await stat(join(path, name)).catch(() => undefined))?.isFile()) names.push(name);
    }
    names.sort();
    if (names.length === 0) problems.push(`${path}: no .yaml, .yml or .json files`);
    files.push(...names.map((name) => join(path, name)));
  }
  return files;
}

async function readDocuments(file: string, problems: string[]): Promise<unknown[]> {
  let text: string;
  try {
    const size = (await stat(file)).size;
    if (size > MAX_MANIFEST_BYTES) {
      problems.push(
        `${file}: ${size} bytes is more than the ${MAX_MANIFEST_BYTES} a manifest file may have`,
      );
      return [];
    }
    text = await readFile(file, 'utf8');
  } catch (error) {
    problems.push(`${file}: ${errorMessage(error)}`);
    return [];
  }
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(text, { prettyErrors: false })) {
    if (doc.errors.length > 0) {
      for (const error of doc.errors)
        problems.push(`${file}: ${basename(file)} is not valid YAML: ${error.message}`);
      continue;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    out.push(value);
  }
  return out;
}

/**
 * Where a `__proto__` key sits, if anywhere. No Kubernetes field has that name, and copying such an
 * object by assignment turns the key into the copy's prototype (inherited, unvalidated fields).
 */
function findProtoKey(value: unknown, path: PropertyKey[]): string | undefined {
  if (path.length > 64 || typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = findProtoKey(item, [...path, index]);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (Object.hasOwn(value, '__proto__') || Object.getPrototypeOf(value) !== Object.prototype) {
    return formatPath(path);
  }
  for (const [key, child] of Object.entries(value)) {
    const found = findProtoKey(child, [...path, key]);
    if (found !== undefined) return found;
  }
  return undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

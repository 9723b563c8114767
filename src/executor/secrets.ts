/**
 * Where a tool's `secretEnv` values come from, read per call so a rotated Secret takes effect on
 * the next call without a restart. In a cluster: the Secret volumes the controller mounts into the
 * executor pod (`<dir>/<secretName>/<key>`, the kubelet's layout); in `mcpworks serve`: the Secret
 * manifests it loaded, replaced on reload. `resolveSecretEnv` is the pure decision of what a call
 * gets (or why it is refused); no value ever appears in what it reports.
 */
import { open, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { SecretManifest } from '../api/manifests.ts';
import type { SecretEnvVar } from '../api/v1alpha1/mcpserver.ts';

/** One key of one Secret. `namespace` is the McpServer's (a cluster executor serves one). */
export interface SecretKeyLocation {
  namespace: string;
  name: string;
  key: string;
}

/** A value, or why there is none (the value's absence is all a caller learns). */
export type SecretLookup =
  | { found: true; value: Buffer }
  | { found: false; missing: 'secret' | 'key' | 'unreadable' }
  /** A Secret tools may not read at all (`why` names it, e.g. a server's API key Secret). */
  | { found: false; missing: 'reserved'; why: string };

export interface SecretSource {
  read(location: SecretKeyLocation): Promise<SecretLookup>;
}

/**
 * Below this many bytes a value is refused: redaction matches values (and their encodings) in
 * results, and a short value would both miss its own leaks (its base64 core is a few characters)
 * and redact unrelated text that happens to contain it.
 */
export const MIN_SECRET_BYTES = 8;
/**
 * Longer values are refused: far beyond any credential, and an environment string a sandboxed
 * program could not even pass on to a child (Linux caps one at 128 KiB).
 */
export const MAX_SECRET_BYTES = 64 * 1024;

/** Where the controller mounts each referenced Secret in the executor pod. */
export const CLUSTER_SECRETS_DIR = '/var/run/mcpworks/secrets';

/** Secret keys the kubelet never writes as files (its own `..data` entries, `.` and `..`). */
function unsafeKey(key: string): boolean {
  return key === '.' || key.startsWith('..') || key.includes('/') || key.includes('\0');
}

/**
 * Secret volumes under `dir`, one directory per Secret (`<dir>/<secretName>/<key>`, where the
 * kubelet makes `<key>` a symlink into `..data/`, swapped atomically on rotation). The namespace
 * is not part of the path: a cluster executor serves the one McpServer of its namespace. A file
 * that resolves outside its Secret's directory, is not a regular file or is larger than a Secret
 * can be is `unreadable`.
 */
export function createDirectorySecretSource(dir: string): SecretSource {
  return {
    async read({ name, key }) {
      if (unsafeKey(key) || unsafeKey(name)) return { found: false, missing: 'key' };
      const secretDir = join(dir, name);
      let realDir: string;
      try {
        if (!(await stat(secretDir)).isDirectory()) return { found: false, missing: 'secret' };
        realDir = await realpath(secretDir);
      } catch (error) {
        return { found: false, missing: notFound(error) ? 'secret' : 'unreadable' };
      }
      let handle;
      try {
        const real = await realpath(join(secretDir, key));
        if (!real.startsWith(realDir + sep)) return { found: false, missing: 'unreadable' };
        handle = await open(real, 'r');
      } catch (error) {
        return { found: false, missing: notFound(error) ? 'key' : 'unreadable' };
      }
      try {
        const info = await handle.stat();
        if (!info.isFile()) return { found: false, missing: 'unreadable' };
        // One byte more than allowed is enough to refuse it as too long (secretProblem).
        const buffer = Buffer.alloc(MAX_SECRET_BYTES + 1);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
        return { found: true, value: buffer.subarray(0, bytesRead) };
      } catch {
        return { found: false, missing: 'unreadable' };
      } finally {
        await handle.close();
      }
    },
  };
}

function notFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The Secrets `mcpworks serve` loaded from manifests; `replace` swaps them on a reload. */
export interface ManifestSecretSource extends SecretSource {
  replace(secrets: readonly SecretManifest[], reserved?: ReadonlyMap<string, string>): void;
}

/**
 * Secrets tools may not read, by `namespace/name`: each server's API key Secret (who holds which
 * key; never a tool credential, as in a cluster, src/controller/desired-workloads.ts).
 */
export function reservedManifestSecrets(
  servers: readonly {
    metadata: { namespace?: string | undefined; name: string };
    spec: { auth: { apiKeys?: { secretRef: { name: string } } | undefined } };
  }[],
): Map<string, string> {
  const reserved = new Map<string, string>();
  for (const server of servers) {
    const namespace = server.metadata.namespace ?? 'default';
    const ref = server.spec.auth.apiKeys?.secretRef.name;
    if (ref !== undefined)
      reserved.set(
        `${namespace}/${ref}`,
        `the API key Secret of McpServer ${namespace}/${server.metadata.name}`,
      );
  }
  return reserved;
}

export function createManifestSecretSource(
  secrets: readonly SecretManifest[],
  reservedSecrets: ReadonlyMap<string, string> = new Map(),
): ManifestSecretSource {
  let byName = index(secrets);
  let reserved = reservedSecrets;
  return {
    read({ namespace, name, key }) {
      const why = reserved.get(`${namespace}/${name}`);
      if (why !== undefined) return Promise.resolve({ found: false, missing: 'reserved', why });
      const secret = byName.get(`${namespace}/${name}`);
      if (secret === undefined) return Promise.resolve({ found: false, missing: 'secret' });
      const encoded = Object.hasOwn(secret.data, key) ? secret.data[key] : undefined;
      if (encoded === undefined) return Promise.resolve({ found: false, missing: 'key' });
      return Promise.resolve({ found: true, value: Buffer.from(encoded, 'base64') });
    },
    replace(next, nextReserved) {
      byName = index(next);
      if (nextReserved !== undefined) reserved = nextReserved;
    },
  };
}

function index(secrets: readonly SecretManifest[]): Map<string, SecretManifest> {
  return new Map(
    secrets.map((s) => [`${s.metadata.namespace ?? 'default'}/${s.metadata.name}`, s]),
  );
}

/** What a call gets: each variable's value, by name. */
export type ResolvedSecretEnv =
  | { ok: true; env: Record<string, string>; values: { name: string; value: string }[] }
  | { ok: false; message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Why one looked-up value cannot be used, in words naming the variable, Secret and key and never
 * the value; undefined when it can.
 */
export function secretProblem(
  variable: SecretEnvVar,
  namespace: string,
  lookup: SecretLookup,
): string | undefined {
  const { name: secret, key } = variable.secretKeyRef;
  const where = `secretEnv ${variable.name}: key ${JSON.stringify(key)} of Secret ${namespace}/${secret}`;
  if (!lookup.found) {
    if (lookup.missing === 'secret')
      return `secretEnv ${variable.name}: Secret ${namespace}/${secret} not found`;
    if (lookup.missing === 'reserved')
      return `secretEnv ${variable.name}: Secret ${namespace}/${secret} is ${lookup.why}, which tools may not read`;
    return lookup.missing === 'key' ? `${where} is missing` : `${where} cannot be read`;
  }
  if (lookup.value.length > MAX_SECRET_BYTES)
    return `${where} is longer than ${MAX_SECRET_BYTES} bytes`;
  if (lookup.value.length < MIN_SECRET_BYTES)
    return `${where} is shorter than ${MIN_SECRET_BYTES} bytes, too short to be redacted reliably`;
  let text: string;
  try {
    text = utf8.decode(lookup.value);
  } catch {
    return `${where} is not UTF-8 text`;
  }
  if (text.includes('\0')) return `${where} contains a NUL character`;
  return undefined;
}

/**
 * Reads every variable the tool declares, each from `source` (absent: none configured). The
 * first problem refuses the whole call (fail closed: a tool never runs with part of its secrets).
 */
export async function resolveSecretEnv(
  variables: readonly SecretEnvVar[],
  namespace: string,
  source: SecretSource | undefined,
): Promise<ResolvedSecretEnv> {
  const env: Record<string, string> = {};
  const values: { name: string; value: string }[] = [];
  for (const variable of variables) {
    const { name: secret, key } = variable.secretKeyRef;
    if (source === undefined) {
      return {
        ok: false,
        message: `secretEnv ${variable.name}: key ${JSON.stringify(key)} of Secret ${namespace}/${secret} cannot be read: this executor has no secret source configured`,
      };
    }
    const lookup = await source.read({ namespace, name: secret, key });
    const problem = secretProblem(variable, namespace, lookup);
    if (problem !== undefined || !lookup.found) return { ok: false, message: problem ?? '' };
    const value = utf8.decode(lookup.value);
    env[variable.name] = value;
    values.push({ name: variable.name, value });
  }
  return { ok: true, env, values };
}

/** The servers and tools a secretEnv check walks (McpServer manifests, or their snapshots). */
export interface SecretEnvDeclarer {
  metadata: { namespace?: string | undefined; name: string };
  spec: { tools: readonly { name: string; secretEnv?: readonly SecretEnvVar[] | undefined }[] };
}

/**
 * Every secretEnv reference `source` cannot satisfy now, one line each naming server, tool,
 * variable, Secret and key (never a value): what `mcpworks serve` warns about at start and on
 * each reload, its analogue of the controller's Degraded condition.
 */
export async function secretEnvProblems(
  servers: readonly SecretEnvDeclarer[],
  source: SecretSource,
): Promise<string[]> {
  const problems: string[] = [];
  for (const server of servers) {
    const namespace = server.metadata.namespace ?? 'default';
    for (const tool of server.spec.tools) {
      for (const variable of tool.secretEnv ?? []) {
        const lookup = await source.read({ namespace, ...variable.secretKeyRef });
        const problem = secretProblem(variable, namespace, lookup);
        if (problem !== undefined)
          problems.push(
            `McpServer ${namespace}/${server.metadata.name}: tool ${tool.name}: ${problem}; its calls fail closed`,
          );
      }
    }
  }
  return problems;
}

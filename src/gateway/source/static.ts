/**
 * The GatewayConfigSource of `mcpworks serve`: snapshots built from manifests on disk, the same
 * objects a cluster would hold. `buildSnapshots` is pure (manifests in, snapshots and warnings
 * out); `createStaticSource` holds the current snapshot and lets a reload replace it.
 */
import type { Manifests } from '../../api/manifests.ts';
import type { McpServer } from '../../api/v1alpha1/mcpserver.ts';
import type { ResolvedTool } from '../../executor/types.ts';
import { ErrorCode, McpworksError } from '../../shared/errors.ts';
import { compilePolicySet, type CompiledPolicySet } from '../policy/engine.ts';
import type { GatewayConfigSource, GatewaySnapshot } from './types.ts';

export interface BuiltSnapshots {
  snapshots: GatewaySnapshot[];
  /** Problems that do not stop serving but change behaviour (fail closed); print them. */
  warnings: string[];
}

const serverName = (s: McpServer) =>
  `McpServer ${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;

/** Resolves `codeFrom` against the ConfigMaps in the manifests; throws InvalidManifest naming the field. */
export function resolveTools(
  server: McpServer,
  manifests: Pick<Manifests, 'configMaps'>,
): ResolvedTool[] {
  const namespace = server.metadata.namespace ?? 'default';
  const problems: string[] = [];
  const tools = server.spec.tools.map((tool, index): ResolvedTool => {
    const { code, codeFrom, ...rest } = tool;
    if (code !== undefined) return { ...rest, code };
    const ref = codeFrom?.configMapKeyRef;
    const field = `spec.tools[${index}].codeFrom.configMapKeyRef`;
    const configMap = manifests.configMaps.find(
      (c) => c.metadata.name === ref?.name && (c.metadata.namespace ?? 'default') === namespace,
    );
    const text = ref === undefined ? undefined : configMap?.data[ref.key];
    if (ref === undefined)
      problems.push(
        `${serverName(server)}: spec.tools[${index}]: one of code or codeFrom is required`,
      );
    else if (configMap === undefined)
      problems.push(
        `${serverName(server)}: ${field}: ConfigMap ${namespace}/${ref.name} not found`,
      );
    else if (text === undefined || text === '')
      problems.push(
        `${serverName(server)}: ${field}: ConfigMap ${namespace}/${ref.name} has no key ${JSON.stringify(ref.key)}`,
      );
    return { ...rest, code: text ?? '' };
  });
  if (problems.length > 0) {
    throw new McpworksError(ErrorCode.InvalidManifest, problems.join('\n'), {
      details: { problems },
    });
  }
  return tools;
}

function secretData(
  server: McpServer,
  manifests: Manifests,
  warnings: string[],
): Record<string, string> | undefined {
  const ref = server.spec.auth.apiKeys?.secretRef;
  if (ref === undefined) return undefined;
  const namespace = server.metadata.namespace ?? 'default';
  const secret = manifests.secrets.find(
    (s) => s.metadata.name === ref.name && (s.metadata.namespace ?? 'default') === namespace,
  );
  if (secret === undefined) {
    warnings.push(
      `${serverName(server)}: spec.auth.apiKeys.secretRef: Secret ${namespace}/${ref.name} not found; every API key is rejected`,
    );
    return undefined;
  }
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(secret.data)) {
    if (ref.key === undefined || ref.key === key)
      data[key] = Buffer.from(value, 'base64').toString('utf8');
  }
  return data;
}

/** One snapshot per McpServer; `revision` is shared by all of them (one load = one revision). */
export function buildSnapshots(manifests: Manifests, revision: number): BuiltSnapshots {
  const warnings: string[] = [];
  const compiled: {
    set: CompiledPolicySet;
    errors: { policy: string; path: string; message: string }[];
  } = compilePolicySet({
    agentPolicies: manifests.policies,
    clusterPolicies: manifests.clusterPolicies,
  });
  for (const error of compiled.errors) {
    warnings.push(
      `${error.policy}: ${error.path}: ${error.message} (not accepted: its Allow rules do not apply, its Deny rules do)`,
    );
  }
  const problems: string[] = [];
  const snapshots: GatewaySnapshot[] = [];
  for (const server of manifests.servers) {
    let tools: ResolvedTool[];
    try {
      tools = resolveTools(server, manifests);
    } catch (error) {
      problems.push((error as Error).message);
      continue;
    }
    const namespace = server.metadata.namespace ?? 'default';
    const apiKeySecretData = secretData(server, manifests, warnings);
    snapshots.push({
      revision,
      server,
      tools,
      policySet: compiled.set,
      ...(apiKeySecretData === undefined ? {} : { apiKeySecretData }),
      // What every cluster sets on its namespaces since Kubernetes 1.22.
      namespaceLabels: { 'kubernetes.io/metadata.name': namespace },
    });
  }
  if (problems.length > 0) {
    throw new McpworksError(
      ErrorCode.InvalidManifest,
      `invalid manifests:\n${problems.join('\n')}`,
      { details: { problems } },
    );
  }
  return { snapshots, warnings };
}

export interface StaticSource extends GatewayConfigSource {
  /** Publishes a new snapshot (a reload); listeners run synchronously. */
  replace(snapshot: GatewaySnapshot): void;
}

export function createStaticSource(initial: GatewaySnapshot): StaticSource {
  let current = initial;
  const listeners = new Set<(snapshot: GatewaySnapshot) => void>();
  return {
    current: () => current,
    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    replace(snapshot) {
      current = snapshot;
      for (const listener of listeners) listener(snapshot);
    },
  };
}

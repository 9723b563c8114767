/**
 * Whether the Secrets that tools read through secretEnv exist and hold the referenced keys. Pure
 * (give it what the API server returned); the reconciler turns the answer into the Degraded
 * condition. The server still deploys: the executor mounts these volumes optional, and only the
 * tools named here fail their calls (closed) until the Secret or key appears. Messages name
 * tools, variables, Secrets and keys, never a value.
 */
import type { McpServer } from '../api/v1alpha1/mcpserver.ts';
import type { KubeObject } from '../k8s/types.ts';
import { isPossibleSecretKey, reservedSecretReason } from './desired-workloads.ts';
import { Reasons, type Problem } from './status.ts';

/** `GITHUB_TOKEN of tool create_issue, TOKEN of tool sync`, in spec order. */
function users(server: McpServer, secretName: string, key?: string): string {
  const uses: string[] = [];
  for (const tool of server.spec.tools) {
    for (const entry of tool.secretEnv ?? []) {
      const ref = entry.secretKeyRef;
      if (ref.name === secretName && (key === undefined || ref.key === key))
        uses.push(`${entry.name} of tool ${tool.name}`);
    }
  }
  return uses.join(', ');
}

/**
 * One problem per missing Secret and per missing key of a present one. `secrets` maps each
 * Secret name referenced by a secretEnv to what the API server returned (undefined: not found).
 */
export function toolSecretProblems(
  server: McpServer,
  secrets: ReadonlyMap<string, KubeObject | undefined>,
): Problem[] {
  const ns = server.metadata.namespace ?? 'default';
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const tool of server.spec.tools) {
    for (const entry of tool.secretEnv ?? []) {
      const { name, key } = entry.secretKeyRef;
      const reserved = reservedSecretReason(server, name);
      if (reserved !== undefined) {
        if (seen.has(name)) continue;
        seen.add(name);
        problems.push({
          reason: Reasons.SecretNotAllowed,
          message: `Secret ${ns}/${name} (secretEnv ${users(server, name)}) is ${reserved}, which tools may not read: calls of these tools fail; give them a Secret of their own`,
        });
        continue;
      }
      const secret = secrets.get(name);
      if (secret === undefined) {
        if (seen.has(name)) continue;
        seen.add(name);
        problems.push({
          reason: Reasons.SecretNotFound,
          message: `Secret ${ns}/${name} (secretEnv ${users(server, name)}) not found: calls of these tools fail until it exists`,
        });
        continue;
      }
      const id = `${name}\u0000${key}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const data = (secret['data'] ?? {}) as Record<string, unknown>;
      if (isPossibleSecretKey(key) && Object.hasOwn(data, key)) continue;
      problems.push({
        reason: Reasons.SecretKeyNotFound,
        message: `Secret ${ns}/${name} has no key "${key}" (secretEnv ${users(server, name, key)}): calls of these tools fail until it exists`,
      });
    }
  }
  return problems;
}

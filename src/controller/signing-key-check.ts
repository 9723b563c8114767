/**
 * Whether the Secret named by spec.audit.signingKeySecretRef can start a gateway: it exists, has
 * the key, and the key is an Ed25519 private key. Pure (give it what the API server returned);
 * the reconciler turns the answer into the Degraded condition, so `kubectl get mcpserver` says
 * why gateway pods do not start instead of leaving the operator to find a pod event.
 */
import type { McpServer } from '../api/v1alpha1/mcpserver.ts';
import { parseSigningKey } from '../gateway/decisions/signing.ts';
import type { KubeObject } from '../k8s/types.ts';
import { Reasons, type Problem } from './status.ts';

export function signingKeyProblem(
  server: McpServer,
  secret: KubeObject | undefined,
): Problem | undefined {
  const ref = server.spec.audit.signingKeySecretRef;
  if (ref === undefined) return undefined;
  const what = `Secret ${server.metadata.namespace ?? 'default'}/${ref.name}`;
  if (secret === undefined) {
    return {
      reason: Reasons.SecretNotFound,
      message: `${what} (spec.audit.signingKeySecretRef) not found: gateway pods cannot start`,
    };
  }
  const data = (secret['data'] ?? {}) as Record<string, string>;
  if (!Object.hasOwn(data, ref.key)) {
    return {
      reason: Reasons.SecretKeyNotFound,
      message: `${what} has no key "${ref.key}" (spec.audit.signingKeySecretRef): gateway pods cannot start`,
    };
  }
  try {
    parseSigningKey(Buffer.from(data[ref.key] as string, 'base64').toString('utf8'));
  } catch (error) {
    return {
      reason: Reasons.InvalidSigningKey,
      message: `${what} key "${ref.key}" is not an Ed25519 private key (PEM PKCS#8): ${(error as Error).message}; gateway pods refuse to start`,
    };
  }
  return undefined;
}

// Who a request comes from. The shape is the contract with the policy engine
// (src/gateway/policy/types.ts); builders live here so every method names principals alike.
export interface Principal {
  kind: 'Agent' | 'ServiceAccount' | 'Anonymous';
  /** Agent name; `system:serviceaccount:<ns>:<name>` for a ServiceAccount; `anonymous`. */
  name: string;
  /** A ServiceAccount's namespace. */
  namespace?: string;
  /** A ServiceAccount's own name (without namespace). */
  serviceAccountName?: string;
  groups: readonly string[];
  authMethod: 'api-key' | 'oidc' | 'service-account' | 'anonymous';
}

export function agentPrincipal(
  name: string,
  groups: readonly string[],
  authMethod: 'api-key' | 'oidc',
): Principal {
  return { kind: 'Agent', name, groups, authMethod };
}

export const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';

/** `system:serviceaccount:<ns>:<name>` → its parts; undefined for any other username. */
export function parseServiceAccountUsername(
  username: string,
): { namespace: string; name: string } | undefined {
  if (!username.startsWith(SERVICE_ACCOUNT_PREFIX)) return undefined;
  const parts = username.slice(SERVICE_ACCOUNT_PREFIX.length).split(':');
  if (parts.length !== 2) return undefined;
  const [namespace, name] = parts as [string, string];
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  if (namespace.length > 63 || !label.test(namespace)) return undefined;
  if (name.length > 253 || !subdomain.test(name)) return undefined;
  return { namespace, name };
}

export function serviceAccountPrincipal(
  namespace: string,
  name: string,
  groups: readonly string[],
): Principal {
  return {
    kind: 'ServiceAccount',
    name: `${SERVICE_ACCOUNT_PREFIX}${namespace}:${name}`,
    namespace,
    serviceAccountName: name,
    groups,
    authMethod: 'service-account',
  };
}

export const ANONYMOUS_PRINCIPAL: Principal = Object.freeze({
  kind: 'Anonymous',
  name: 'anonymous',
  groups: Object.freeze([]) as readonly string[],
  authMethod: 'anonymous',
}) as Principal;

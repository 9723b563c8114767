// Who a request comes from. The shape is the policy engine's contract (../policy/types.ts);
// the builders live here so every method names its principals the same way.
import type { Principal } from '../policy/types.ts';

export type { Principal } from '../policy/types.ts';

export function agentPrincipal(
  name: string,
  groups: readonly string[],
  authMethod: 'api-key' | 'oidc',
): Principal {
  return { kind: 'Agent', name, groups: [...groups], authMethod };
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
    groups: [...groups],
    authMethod: 'service-account',
  };
}

/** A fresh object per request: principals travel into request contexts that may annotate them. */
export function anonymousPrincipal(): Principal {
  return { kind: 'Anonymous', name: 'anonymous', groups: [], authMethod: 'anonymous' };
}

/** The anonymous principal as a frozen constant, for tests and comparisons; never mutate it. */
export const ANONYMOUS_PRINCIPAL: Principal = Object.freeze({
  ...anonymousPrincipal(),
  groups: Object.freeze([]) as unknown as string[],
});

/**
 * The principal's stable identity, `kind:name` (`Agent:alice`,
 * `ServiceAccount:system:serviceaccount:ns:sa`, `Anonymous:anonymous`): the key the fair queue
 * shares executor slots by. The auth method is left out on purpose: an agent is one caller
 * whether it presents an API key or an OIDC token.
 */
export function callerKey(principal: Pick<Principal, 'kind' | 'name'>): string {
  return `${principal.kind}:${principal.name}`;
}

/** A callerKey as a refusal message names it: "agent 'alice'", "the anonymous caller", ... */
export function describeCaller(key: string): string {
  const colon = key.indexOf(':');
  const kind = colon === -1 ? '' : key.slice(0, colon);
  const name = colon === -1 ? key : key.slice(colon + 1);
  if (kind === 'Anonymous') return 'the anonymous caller';
  const noun = kind === 'ServiceAccount' ? 'service account' : 'agent';
  return `${noun} '${name.slice(0, 256)}'`;
}

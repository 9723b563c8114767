/**
 * Request-level guards that run before authentication: DNS-rebinding defence (Origin and Host)
 * and the refusal of credentials in query strings. Pure functions over header values; each
 * returns a reason code rather than a bare boolean so the caller can record why.
 */

/** Hosts that only a process on this machine can reach. */
const LOOPBACK_HOSTNAMES = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Query parameters that carry credentials (RFC 6750 §2.3 and common API-key spellings). */
const CREDENTIAL_PARAMS = new Set([
  'access_token',
  'token',
  'id_token',
  'api_key',
  'apikey',
  'api-key',
  'key',
  'auth',
  'authorization',
]);

export interface OriginPolicy {
  /**
   * Exact origins (`scheme://host[:port]`) allowed besides loopback ones. A request without an
   * Origin header (not a browser) is always allowed; a browser on a foreign page never is.
   */
  allowedOrigins: readonly string[];
  /**
   * Host header values (`host[:port]`, case-insensitive) accepted. `undefined` accepts any
   * Host (a gateway behind a Service); `mcpworks serve` passes the loopback names so that a
   * DNS-rebound name pointing at 127.0.0.1 is refused.
   */
  allowedHosts?: readonly string[];
}

export type GuardResult = { ok: true } | { ok: false; code: GuardCode; message: string };
export const GuardCode = {
  OriginRejected: 'origin_rejected',
  HostRejected: 'host_rejected',
  CredentialInQuery: 'credential_in_query',
} as const;
export type GuardCode = (typeof GuardCode)[keyof typeof GuardCode];

function hostnameOf(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/**
 * The URL of an Origin header that is a serialized origin (RFC 6454: `scheme://host[:port]` and
 * nothing else), or undefined. A browser never sends user info, a path or a query in Origin, so
 * `http://evil.com@127.0.0.1` is not an origin at all (its URL's host would read as loopback).
 */
function serializedOrigin(origin: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return url.origin === origin.toLowerCase() ? url : undefined;
}

export function isLoopbackOrigin(origin: string): boolean {
  const url = serializedOrigin(origin);
  return url !== undefined && LOOPBACK_HOSTNAMES.has(url.hostname.toLowerCase());
}

export function checkOrigin(origin: string | undefined, policy: OriginPolicy): GuardResult {
  if (origin === undefined) return { ok: true };
  const rejected = {
    ok: false,
    code: GuardCode.OriginRejected,
    message: 'Forbidden: origin not allowed',
  } as const;
  if (serializedOrigin(origin) === undefined) return rejected;
  if (isLoopbackOrigin(origin)) return { ok: true };
  const normalized = origin.toLowerCase();
  if (policy.allowedOrigins.some((o) => o.toLowerCase().replace(/\/$/, '') === normalized)) {
    return { ok: true };
  }
  return rejected;
}

export function checkHost(host: string | undefined, policy: OriginPolicy): GuardResult {
  if (policy.allowedHosts === undefined) return { ok: true };
  if (host === undefined || host === '') {
    return { ok: false, code: GuardCode.HostRejected, message: 'Forbidden: missing Host header' };
  }
  const value = host.trim().toLowerCase();
  const name = hostnameOf(value);
  const allowed = policy.allowedHosts.some((h) => {
    const a = h.toLowerCase();
    return a === value || a === name;
  });
  return allowed
    ? { ok: true }
    : { ok: false, code: GuardCode.HostRejected, message: 'Forbidden: host not allowed' };
}

/** Host names `mcpworks serve` accepts when bound to loopback. */
export const LOOPBACK_HOSTS: readonly string[] = [...LOOPBACK_HOSTNAMES];

/** Tokens never travel in URLs (MCP authorization spec): refuse them even next to a valid header. */
export function checkQuery(search: URLSearchParams): GuardResult {
  for (const name of search.keys()) {
    if (CREDENTIAL_PARAMS.has(name.toLowerCase())) {
      return {
        ok: false,
        code: GuardCode.CredentialInQuery,
        message: 'Bad Request: credentials are not accepted in the query string',
      };
    }
  }
  return { ok: true };
}

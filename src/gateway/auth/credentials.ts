// Pulls the one credential a request carries out of its headers. Pure: no verification here.
//
// The only accepted form is `Authorization: Bearer <token>` (RFC 6750 section 2.1), for API keys
// and JWTs alike. Credentials in the query string are refused outright (the MCP authorization
// spec forbids them: they end up in access logs, browser history and Referer headers).
import { authFailure, type AuthFailure } from './types.ts';

/** RFC 6750 b64token, capped well above any real JWT. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** Query parameters that only ever carry credentials. */
const CREDENTIAL_PARAMS = new Set([
  'access_token',
  'id_token',
  'token',
  'api_key',
  'apikey',
  'api-key',
  'x-api-key',
]);

export type ExtractedCredential =
  { kind: 'none' } | { kind: 'bearer'; token: string } | { kind: 'rejected'; failure: AuthFailure };

type Headers = Readonly<Record<string, string | string[] | undefined>>;

function header(headers: Headers, name: string): string | string[] | undefined {
  const direct = headers[name];
  if (direct !== undefined) return direct;
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name) return headers[key];
  }
  return undefined;
}

/** True when the request target's query string carries something that looks like a credential. */
export function hasCredentialInQuery(url: string | undefined): boolean {
  if (url === undefined) return false;
  const q = url.indexOf('?');
  if (q < 0) return false;
  const params = new URLSearchParams(url.slice(q + 1));
  for (const [name, value] of params) {
    if (CREDENTIAL_PARAMS.has(name.toLowerCase())) return true;
    if (value.startsWith('mcpw_') || /^Bearer\s/i.test(value)) return true;
  }
  return false;
}

export function extractCredential(request: {
  headers: Headers;
  url?: string;
}): ExtractedCredential {
  if (hasCredentialInQuery(request.url)) {
    return { kind: 'rejected', failure: authFailure('token-in-query') };
  }
  const raw = header(request.headers, 'authorization');
  if (raw === undefined || raw === '') {
    // A key sent the way some other gateways expect it: say which form works instead.
    if (header(request.headers, 'x-api-key') !== undefined) {
      return { kind: 'rejected', failure: authFailure('unsupported-scheme') };
    }
    return { kind: 'none' };
  }
  if (Array.isArray(raw)) {
    if (raw.length !== 1) return { kind: 'rejected', failure: authFailure('malformed-request') };
    return parseAuthorization(raw[0] ?? '');
  }
  return parseAuthorization(raw);
}

function parseAuthorization(value: string): ExtractedCredential {
  if (value.length > MAX_TOKEN_LENGTH + 16) {
    return { kind: 'rejected', failure: authFailure('malformed-request') };
  }
  const space = value.indexOf(' ');
  const scheme = space < 0 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') {
    return { kind: 'rejected', failure: authFailure('unsupported-scheme') };
  }
  const token = space < 0 ? '' : value.slice(space + 1).trim();
  if (token === '' || !B64TOKEN.test(token)) {
    return { kind: 'rejected', failure: authFailure('malformed-request') };
  }
  return { kind: 'bearer', token };
}

// The contract between authentication and the HTTP layer: one request in, a principal or a
// failure with a bounded reason out. Nothing here performs I/O.
import type { Principal } from './principal.ts';

export type { Principal } from './principal.ts';

/** How a caller proved who it is; also the `method` label of auth metrics. */
export const AUTH_METHODS = ['api-key', 'oidc', 'service-account', 'anonymous'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

/**
 * Why authentication failed. A closed set: it is a metric label, a log field and part of the
 * decision log, so it never carries caller-supplied text.
 */
export const AUTH_FAILURE_REASONS = [
  'missing-credentials',
  'malformed-request',
  'token-in-query',
  'unsupported-scheme',
  'method-not-enabled',
  'malformed',
  'expired',
  'not-yet-valid',
  'bad-signature',
  'disallowed-algorithm',
  'wrong-issuer',
  'wrong-audience',
  'missing-claim',
  'wrong-token-type',
  'lifetime-too-long',
  'unknown-key',
  'revoked',
  'insufficient-scope',
  'anonymous-disabled',
  'review-failed',
  'verifier-unavailable',
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** RFC 6750 section 3.1 error codes, as they appear in WWW-Authenticate. */
export type BearerError = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

export interface AuthRequest {
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The request target (path and query), to refuse credentials sent in the query string. */
  url?: string;
}

export interface AuthSuccess {
  ok: true;
  principal: Principal;
  method: AuthMethod;
  /** Non-secret facts about the credential, for the decision log (never the credential). */
  credential: {
    /** API key id, or the token's `jti` when it has one. */
    id?: string;
    issuer?: string;
    /** When the credential stops being valid, if known. */
    expiresAt?: Date;
  };
}

export interface AuthFailure {
  ok: false;
  status: 400 | 401 | 403;
  reason: AuthFailureReason;
  /** The method that rejected the credential; absent when none could be identified. */
  method?: AuthMethod;
  /** RFC 6750 error code for WWW-Authenticate; absent when no credential was sent. */
  error?: BearerError;
  /** Scopes the caller lacks (insufficient-scope only). */
  scope?: readonly string[];
  /** Safe to show to a client: never echoes the credential or verifier internals. */
  message: string;
}

export type AuthResult = AuthSuccess | AuthFailure;

export interface Authenticator {
  authenticate(request: AuthRequest): Promise<AuthResult>;
}

/** One way of verifying one kind of credential; the authenticator picks which one applies. */
export interface CredentialVerifier {
  readonly method: AuthMethod;
  verify(token: string): Promise<AuthResult>;
}

const STATUS: Record<AuthFailureReason, 400 | 401 | 403> = {
  'missing-credentials': 401,
  'malformed-request': 400,
  'token-in-query': 400,
  'unsupported-scheme': 401,
  'method-not-enabled': 401,
  malformed: 401,
  expired: 401,
  'not-yet-valid': 401,
  'bad-signature': 401,
  'disallowed-algorithm': 401,
  'wrong-issuer': 401,
  'wrong-audience': 401,
  'missing-claim': 401,
  'wrong-token-type': 401,
  'lifetime-too-long': 401,
  'unknown-key': 401,
  revoked: 401,
  'insufficient-scope': 403,
  'anonymous-disabled': 401,
  'review-failed': 401,
  'verifier-unavailable': 401,
};

const MESSAGES: Record<AuthFailureReason, string> = {
  'missing-credentials': 'authentication required',
  'malformed-request': 'malformed Authorization header',
  'token-in-query': 'credentials must not be sent in the query string',
  'unsupported-scheme': 'only the Bearer authorization scheme is supported',
  'method-not-enabled': 'this kind of credential is not accepted by this server',
  malformed: 'the credential is malformed',
  expired: 'the credential has expired',
  'not-yet-valid': 'the credential is not valid yet',
  'bad-signature': 'the token signature is invalid',
  'disallowed-algorithm': 'the token signing algorithm is not allowed',
  'wrong-issuer': 'the token issuer is not trusted by this server',
  'wrong-audience': 'the token audience is not this server',
  'missing-claim': 'the token lacks a required claim',
  'wrong-token-type': 'the token is not an access token',
  'lifetime-too-long': 'the token is valid for longer than this server accepts',
  'unknown-key': 'unknown API key',
  revoked: 'the credential has been revoked',
  'insufficient-scope': 'the token lacks a required scope',
  'anonymous-disabled': 'authentication required',
  'review-failed': 'the token was not accepted',
  'verifier-unavailable': 'the credential could not be verified right now',
};

/** The one way to build a failure, so status, error code and message stay consistent. */
export function authFailure(
  reason: AuthFailureReason,
  extra: { method?: AuthMethod; scope?: readonly string[] } = {},
): AuthFailure {
  const status = STATUS[reason];
  const failure: AuthFailure = { ok: false, status, reason, message: MESSAGES[reason] };
  if (extra.method !== undefined) failure.method = extra.method;
  if (extra.scope !== undefined) failure.scope = extra.scope;
  const error = bearerError(reason, status);
  if (error !== undefined) failure.error = error;
  return failure;
}

function bearerError(reason: AuthFailureReason, status: 400 | 401 | 403): BearerError | undefined {
  // RFC 6750 3.1: a request without a Bearer credential gets a bare challenge.
  if (reason === 'missing-credentials' || reason === 'anonymous-disabled') return undefined;
  if (reason === 'unsupported-scheme') return undefined;
  if (status === 400) return 'invalid_request';
  if (status === 403) return 'insufficient_scope';
  return 'invalid_token';
}

// Puts the methods together: which verifier a credential goes to, anonymous opt-in, fail closed.
//
// Routing (docs/authentication.md):
//   no credential            → anonymous when enabled, else 401
//   Bearer mcpw_…            → API key
//   Bearer JWT, iss = the configured OIDC issuer → OIDC (signature checked here, with the JWKS)
//   any other Bearer JWT     → TokenReview when ServiceAccount tokens are enabled (the API server
//                              decides), else 401 wrong-issuer
// A credential that fails is never downgraded to anonymous.
import { decodeJwt } from 'jose';
import { systemClock, type Clock } from '../../shared/clock.ts';
import { ErrorCode, McpworksError } from '../../shared/errors.ts';
import { silentLogger, type Logger } from '../../shared/logger.ts';
import { ApiKeyStore, ApiKeyVerifier, isApiKey } from './apikeys.ts';
import {
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  wwwAuthenticate,
  type ProtectedResourceMetadata,
} from './challenge.ts';
import { extractCredential } from './credentials.ts';
import { httpsJsonFetcher, type JsonFetcher } from './https.ts';
import { OidcVerifier, type OidcSettings } from './oidc.ts';
import { anonymousPrincipal } from './principal.ts';
import { ServiceAccountVerifier, type TokenReviewer } from './serviceaccount.ts';
import {
  authFailure,
  type AuthFailure,
  type AuthMethod,
  type AuthRequest,
  type AuthResult,
  type Authenticator,
} from './types.ts';

/** An McpServer's `spec.auth`; the parsed `Auth` type fits, so do test literals without defaults. */
export interface AuthSpec {
  apiKeys?: { secretRef: { name: string; key?: string | undefined } } | undefined;
  oidc?:
    | {
        issuer: string;
        audiences: readonly string[];
        agentClaim?: string | undefined;
        groupsClaim?: string | undefined;
        requiredScopes?: readonly string[] | undefined;
        clockSkewSeconds?: number | undefined;
        maxTokenLifetimeSeconds?: number | undefined;
      }
    | undefined;
  serviceAccountTokens?: { audiences: readonly string[] } | undefined;
  anonymous?: { enabled?: boolean | undefined } | undefined;
}

export interface AuthenticatorOptions {
  auth: AuthSpec;
  /** This server's canonical URL (RFC 8707 resource): `https://host/mcp/<ns>/<name>`. */
  resourceUrl: string;
  /** Required when `auth.apiKeys` is set. */
  apiKeys?: ApiKeyStore | undefined;
  /**
   * A verifier over `apiKeys` that outlives this authenticator, so its caches and hash slots
   * survive a configuration change (the gateway builds one authenticator per snapshot); by
   * default a new one.
   */
  apiKeyVerifier?: ApiKeyVerifier | undefined;
  /** Required when `auth.serviceAccountTokens` is set. */
  tokenReviewer?: TokenReviewer | undefined;
  /**
   * When set, only JWTs with this `iss` go to TokenReview; others fail without an API call.
   * Use the cluster's `--service-account-issuer`.
   */
  serviceAccountIssuer?: string | undefined;
  /** Fetches discovery and JWKS documents; defaults to HTTPS with the system roots or `oidcCa`. */
  fetchJson?: JsonFetcher | undefined;
  oidcCa?: string | undefined;
  clock?: Clock | undefined;
  logger?: Logger | undefined;
}

export interface GatewayAuthenticator extends Authenticator {
  /** The enabled methods, in the order the docs list them. */
  readonly methods: readonly AuthMethod[];
  /** Where this resource's RFC 9728 metadata is served. */
  readonly resourceMetadataUrl: string;
  /** The WWW-Authenticate value for a 401/403 (bare challenge when no failure is given). */
  challenge(failure?: AuthFailure): string;
  /** The RFC 9728 protected-resource metadata document. */
  metadata(): ProtectedResourceMetadata;
}

const invalid = (message: string): McpworksError =>
  new McpworksError(ErrorCode.InvalidInput, `authentication options: ${message}`);

function checkUrl(value: string, what: string, httpsOnly: boolean): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`${what} is not an absolute URL`);
  }
  const allowed = httpsOnly ? ['https:'] : ['https:', 'http:'];
  if (!allowed.includes(url.protocol)) throw invalid(`${what} must use ${allowed.join(' or ')}`);
  if (url.search !== '' || url.hash !== '')
    throw invalid(`${what} must not have a query or fragment`);
  return url;
}

function checkAudiences(audiences: readonly string[] | undefined, what: string): void {
  if (audiences === undefined || audiences.length === 0)
    throw invalid(`${what} needs at least one audience`);
  if (audiences.some((a) => typeof a !== 'string' || a.length === 0)) {
    throw invalid(`${what} has an empty audience`);
  }
}

/** A day by default; at most 30 days (RFC 9068 leaves it to the resource server). */
export const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 86_400;
const MAX_TOKEN_LIFETIME = 2_592_000;

function oidcSettings(spec: NonNullable<AuthSpec['oidc']>): OidcSettings {
  checkUrl(spec.issuer, 'oidc.issuer', true);
  checkAudiences(spec.audiences, 'oidc');
  const skew = spec.clockSkewSeconds ?? 60;
  if (!Number.isInteger(skew) || skew < 0 || skew > 300) {
    throw invalid('oidc.clockSkewSeconds must be an integer from 0 to 300');
  }
  const maxLifetime = spec.maxTokenLifetimeSeconds ?? DEFAULT_MAX_TOKEN_LIFETIME_SECONDS;
  if (!Number.isInteger(maxLifetime) || maxLifetime < 60 || maxLifetime > MAX_TOKEN_LIFETIME) {
    throw invalid(
      `oidc.maxTokenLifetimeSeconds must be an integer from 60 to ${MAX_TOKEN_LIFETIME}`,
    );
  }
  return {
    issuer: spec.issuer,
    audiences: [...spec.audiences],
    agentClaim: spec.agentClaim ?? 'sub',
    groupsClaim: spec.groupsClaim ?? 'groups',
    requiredScopes: spec.requiredScopes === undefined ? undefined : [...spec.requiredScopes],
    clockSkewSeconds: skew,
    maxTokenLifetimeSeconds: maxLifetime,
  };
}

/**
 * Builds the authenticator of one McpServer. Throws McpworksError(InvalidInput) on options that
 * cannot work (so a bad manifest fails at load, not on the first request).
 */
export function createAuthenticator(options: AuthenticatorOptions): GatewayAuthenticator {
  const { auth } = options;
  const clock = options.clock ?? systemClock;
  const logger = (options.logger ?? silentLogger()).child({ component: 'auth' });
  // Local `mcpworks serve` listens on plain-HTTP loopback, so the resource may be http.
  checkUrl(options.resourceUrl, 'resourceUrl', false);

  let apiKeys: ApiKeyVerifier | undefined;
  if (auth.apiKeys !== undefined) {
    if (options.apiKeys === undefined)
      throw invalid('apiKeys is configured but no key store was given');
    apiKeys =
      options.apiKeyVerifier ?? new ApiKeyVerifier({ store: options.apiKeys, clock, logger });
    for (const { id, problem } of options.apiKeys.rejected) {
      logger.warn({ keyId: id, problem }, 'API key entry skipped: it is invalid');
    }
  }

  let oidc: OidcVerifier | undefined;
  if (auth.oidc !== undefined) {
    const settings = oidcSettings(auth.oidc);
    oidc = new OidcVerifier({
      settings,
      fetchJson: options.fetchJson ?? httpsJsonFetcher({ ca: options.oidcCa }),
      clock,
      logger,
    });
  }

  let serviceAccounts: ServiceAccountVerifier | undefined;
  if (auth.serviceAccountTokens !== undefined) {
    checkAudiences(auth.serviceAccountTokens.audiences, 'serviceAccountTokens');
    if (options.tokenReviewer === undefined) {
      throw invalid('serviceAccountTokens is configured but no TokenReviewer was given');
    }
    serviceAccounts = new ServiceAccountVerifier({
      audiences: auth.serviceAccountTokens.audiences,
      reviewer: options.tokenReviewer,
      clock,
      logger,
    });
  }
  if (options.serviceAccountIssuer !== undefined)
    checkUrl(options.serviceAccountIssuer, 'serviceAccountIssuer', false);

  const anonymous = auth.anonymous?.enabled === true;
  const methods: AuthMethod[] = [];
  if (apiKeys) methods.push('api-key');
  if (oidc) methods.push('oidc');
  if (serviceAccounts) methods.push('service-account');
  if (anonymous) methods.push('anonymous');
  if (methods.length === 0) {
    logger.warn('no authentication method is enabled: every request will be refused');
  }

  const resourceMetadataUrl = protectedResourceMetadataUrl(options.resourceUrl);
  const requiredScopes = auth.oidc?.requiredScopes ?? [];

  async function verifyBearer(token: string): Promise<AuthResult> {
    if (isApiKey(token)) {
      return apiKeys
        ? apiKeys.verify(token)
        : authFailure('method-not-enabled', { method: 'api-key' });
    }
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return authFailure('malformed');
    }
    if (oidc !== undefined && iss === oidc.issuer) return oidc.verify(token);
    if (serviceAccounts !== undefined) {
      if (options.serviceAccountIssuer !== undefined && iss !== options.serviceAccountIssuer) {
        return authFailure('wrong-issuer', { method: oidc ? 'oidc' : 'service-account' });
      }
      return serviceAccounts.verify(token);
    }
    if (oidc !== undefined) return authFailure('wrong-issuer', { method: 'oidc' });
    return authFailure('method-not-enabled');
  }

  async function authenticate(request: AuthRequest): Promise<AuthResult> {
    const credential = extractCredential(request);
    let result: AuthResult;
    if (credential.kind === 'rejected') result = credential.failure;
    else if (credential.kind === 'bearer') {
      try {
        result = await verifyBearer(credential.token);
      } catch (err) {
        // A verifier bug must refuse the request, never let it through or crash the server.
        logger.error({ err }, 'credential verification threw');
        result = authFailure('verifier-unavailable');
      }
    } else if (anonymous) {
      result = { ok: true, method: 'anonymous', principal: anonymousPrincipal(), credential: {} };
    } else
      result = authFailure(methods.length === 0 ? 'anonymous-disabled' : 'missing-credentials');
    if (!result.ok && logger.isLevelEnabled('debug')) {
      logger.debug({ reason: result.reason, method: result.method }, 'authentication failed');
    }
    return result;
  }

  return {
    methods,
    resourceMetadataUrl,
    authenticate,
    challenge: (failure) => wwwAuthenticate(resourceMetadataUrl, failure, requiredScopes),
    metadata: () =>
      protectedResourceMetadata({
        resource: options.resourceUrl,
        authorizationServers: oidc ? [oidc.issuer] : [],
        scopesSupported: requiredScopes,
      }),
  };
}

// OIDC / JWT bearer tokens, verified with `jose` against the issuer's published keys.
//
// Discovery (`<issuer>/.well-known/openid-configuration`) and the JWKS are fetched lazily and
// kept for `keysMaxAgeMs`; a token signed by a key we do not know triggers one early refresh per
// `refreshCooldownMs` (key rotation), never one per request. When the issuer is unreachable the
// last good keys keep working; with none, requests fail closed with `verifier-unavailable`.
import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';
import type { JsonFetcher } from './https.ts';
import { agentPrincipal } from './principal.ts';
import {
  authFailure,
  type AuthFailure,
  type AuthFailureReason,
  type AuthResult,
  type AuthSuccess,
  type CredentialVerifier,
} from './types.ts';

/**
 * Asymmetric algorithms only: a JWKS holds public keys, so an HS* token could only "verify" by
 * treating a public key as a shared secret (algorithm confusion). `none` is never accepted.
 */
export const ALLOWED_JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

export interface OidcSettings {
  issuer: string;
  audiences: readonly string[];
  agentClaim: string;
  groupsClaim: string;
  requiredScopes?: readonly string[] | undefined;
  clockSkewSeconds: number;
  /** The longest a token may be valid: exp - iat (or exp - now without iat), in seconds. */
  maxTokenLifetimeSeconds: number;
}

export interface OidcVerifierOptions {
  settings: OidcSettings;
  fetchJson: JsonFetcher;
  clock: Clock;
  logger: Logger;
  keysMaxAgeMs?: number;
  refreshCooldownMs?: number;
  /** A token that verified is remembered (by SHA-256) this long, never past its exp; default 60 s. */
  verifiedCacheTtlMs?: number;
  verifiedCacheSize?: number;
}

const MAX_GROUPS = 256;
const NO_KEYS_RETRY_MS = 5_000;

export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

class VerifierUnavailable extends Error {}

interface KeySet {
  getKey: JWTVerifyGetKey;
  fetchedAt: number;
}

/** The issuer's keys, refreshed on age or on an unknown `kid`, one fetch at a time. */
class IssuerKeys {
  readonly #settings: OidcSettings;
  readonly #fetchJson: JsonFetcher;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #maxAgeMs: number;
  readonly #cooldownMs: number;
  #jwksUri: string | undefined;
  #keys: KeySet | undefined;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #refreshing: Promise<void> | undefined;
  #generation = 0;

  constructor(options: OidcVerifierOptions) {
    this.#settings = options.settings;
    this.#fetchJson = options.fetchJson;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#maxAgeMs = options.keysMaxAgeMs ?? 10 * 60_000;
    this.#cooldownMs = options.refreshCooldownMs ?? 30_000;
  }

  /** Changes whenever a new key set is loaded: verifications cached before are void. */
  get generation(): number {
    return this.#generation;
  }

  /** A jose key resolver for one verification. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const now = this.#clock.monotonicMs();
    if (this.#keys === undefined || now - this.#keys.fetchedAt > this.#maxAgeMs) {
      await this.#refresh(false);
    }
    const keys = this.#keys;
    if (keys === undefined) throw new VerifierUnavailable('no signing keys');
    try {
      return await keys.getKey(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      // Perhaps the issuer rotated its keys: look once, then stay put for the cooldown.
      if (!(await this.#refresh(true))) throw err;
      const fresh = this.#keys;
      if (fresh === undefined || fresh === keys) throw err;
      return fresh.getKey(header, token);
    }
  };

  /** Returns whether a fetch happened (or was already running). */
  async #refresh(onUnknownKey: boolean): Promise<boolean> {
    if (this.#refreshing !== undefined) {
      await this.#refreshing;
      return true;
    }
    const now = this.#clock.monotonicMs();
    // With no keys at all every token fails: retry sooner than when merely refreshing.
    const cooldown =
      this.#keys === undefined ? Math.min(this.#cooldownMs, NO_KEYS_RETRY_MS) : this.#cooldownMs;
    if (now - this.#lastAttempt < cooldown) return false;
    this.#lastAttempt = now;
    this.#refreshing = this.#fetch(onUnknownKey).finally(() => {
      this.#refreshing = undefined;
    });
    await this.#refreshing;
    return true;
  }

  async #fetch(onUnknownKey: boolean): Promise<void> {
    try {
      if (this.#jwksUri === undefined || onUnknownKey) this.#jwksUri = await this.#discover();
      const jwks = await this.#fetchJson(this.#jwksUri);
      if (!isJwks(jwks)) throw new Error('JWKS document has no "keys" array');
      this.#keys = { getKey: createLocalJWKSet(jwks), fetchedAt: this.#clock.monotonicMs() };
      this.#generation++;
      this.#logger.info(
        { issuer: this.#settings.issuer, keys: jwks.keys.length },
        'OIDC keys loaded',
      );
    } catch (err) {
      // Keep serving with the previous keys, if any; the next attempt waits for the cooldown.
      this.#logger.warn(
        { err, issuer: this.#settings.issuer },
        'OIDC discovery or JWKS fetch failed',
      );
    }
  }

  async #discover(): Promise<string> {
    const doc = await this.#fetchJson(discoveryUrl(this.#settings.issuer));
    if (typeof doc !== 'object' || doc === null)
      throw new Error('discovery document is not an object');
    const { issuer, jwks_uri: jwksUri } = doc as { issuer?: unknown; jwks_uri?: unknown };
    // OpenID Connect Discovery 1.0, section 4.3: the issuer must match exactly (mix-up defence).
    if (issuer !== this.#settings.issuer) {
      throw new Error(
        `discovery document names issuer ${JSON.stringify(issuer)}, not the configured one`,
      );
    }
    if (typeof jwksUri !== 'string' || !jwksUri.startsWith('https://')) {
      throw new Error('discovery document has no https jwks_uri');
    }
    return jwksUri;
  }
}

function isJwks(value: unknown): value is JSONWebKeySet {
  return (
    typeof value === 'object' && value !== null && Array.isArray((value as { keys?: unknown }).keys)
  );
}

interface VerifiedToken {
  success: AuthSuccess;
  /** Wall-clock ms after which the entry is void (exp plus skew, or the cache TTL). */
  until: number;
  keysGeneration: number;
}

export class OidcVerifier implements CredentialVerifier {
  readonly method = 'oidc' as const;
  readonly #settings: OidcSettings;
  readonly #clock: Clock;
  readonly #keys: IssuerKeys;
  readonly #cacheTtlMs: number;
  readonly #cacheSize: number;
  readonly #verified = new Map<string, VerifiedToken>();

  constructor(options: OidcVerifierOptions) {
    this.#settings = options.settings;
    this.#clock = options.clock;
    this.#keys = new IssuerKeys(options);
    this.#cacheTtlMs = options.verifiedCacheTtlMs ?? 60_000;
    this.#cacheSize = options.verifiedCacheSize ?? 10_000;
  }

  get issuer(): string {
    return this.#settings.issuer;
  }

  async verify(token: string): Promise<AuthResult> {
    // Agents send the same token on every request: a signature check per request would be most of
    // the gateway's latency budget. Only successes are remembered, and only until exp.
    const digest = createHash('sha256').update(token).digest('base64');
    const now = this.#clock.now().getTime();
    const hit = this.#verified.get(digest);
    if (hit !== undefined) {
      if (hit.until > now && hit.keysGeneration === this.#keys.generation) return copy(hit.success);
      this.#verified.delete(digest);
    }
    const generation = this.#keys.generation;
    const result = await this.#verifyFully(token);
    if (result.ok && result.credential.expiresAt !== undefined) {
      // Keys loaded during this verification count as the ones it used.
      const keysGeneration = generation === 0 ? this.#keys.generation : generation;
      const expiry = result.credential.expiresAt.getTime() + this.#settings.clockSkewSeconds * 1000;
      const until = Math.min(now + this.#cacheTtlMs, expiry);
      if (this.#verified.size >= this.#cacheSize) {
        this.#verified.delete(this.#verified.keys().next().value as string);
      }
      if (until > now) this.#verified.set(digest, { success: result, until, keysGeneration });
      return copy(result);
    }
    return result;
  }

  async #verifyFully(token: string): Promise<AuthResult> {
    const s = this.#settings;
    let payload: JWTPayload;
    let typ: string | undefined;
    try {
      ({
        payload,
        protectedHeader: { typ },
      } = await jwtVerify(token, this.#keys.getKey, {
        issuer: s.issuer,
        audience: [...s.audiences],
        algorithms: [...ALLOWED_JWT_ALGORITHMS],
        clockTolerance: s.clockSkewSeconds,
        currentDate: this.#clock.now(),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      return this.#fail(joseFailureReason(err));
    }
    if (!isAccessTokenType(typ)) return this.#fail('wrong-token-type');
    const nowSeconds = this.#clock.now().getTime() / 1000;
    const validFrom = typeof payload.iat === 'number' ? payload.iat : nowSeconds;
    if ((payload.exp as number) - validFrom > s.maxTokenLifetimeSeconds + s.clockSkewSeconds) {
      return this.#fail('lifetime-too-long');
    }

    const agent = payload[s.agentClaim];
    if (typeof agent !== 'string' || agent.length === 0 || agent.length > 253) {
      return this.#fail('missing-claim');
    }
    const groups = claimStrings(payload[s.groupsClaim]);
    // A malformed groups claim must not silently drop groups: a Deny on a group would then miss.
    if (groups === undefined) return this.#fail('malformed');

    const required = s.requiredScopes ?? [];
    if (required.length > 0) {
      const granted = new Set(tokenScopes(payload));
      if (!required.every((scope) => granted.has(scope))) {
        return authFailure('insufficient-scope', { method: this.method, scope: required });
      }
    }

    const credential: { id?: string; issuer: string; expiresAt?: Date } = { issuer: s.issuer };
    if (typeof payload.jti === 'string' && payload.jti.length <= 256) credential.id = payload.jti;
    if (typeof payload.exp === 'number') credential.expiresAt = new Date(payload.exp * 1000);
    return {
      ok: true,
      method: this.method,
      principal: agentPrincipal(agent, groups, 'oidc'),
      credential,
    };
  }

  #fail(reason: AuthFailureReason): AuthFailure {
    return authFailure(reason, { method: this.method });
  }
}

/** Each request gets its own principal object: callers may annotate it. */
function copy(success: AuthSuccess): AuthSuccess {
  return {
    ...success,
    principal: { ...success.principal, groups: [...success.principal.groups] },
    credential: { ...success.credential },
  };
}

/** Missing → []; a string → [it]; an array of strings → it; anything else → undefined. */
function claimStrings(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value) || value.length > MAX_GROUPS) return undefined;
  if (!value.every((g) => typeof g === 'string' && g.length > 0 && g.length <= 253))
    return undefined;
  return value as string[];
}

/** RFC 9068 `scope` (space-separated) or the common `scp` (array or string). */
function tokenScopes(payload: JWTPayload): string[] {
  const out: string[] = [];
  if (typeof payload['scope'] === 'string') out.push(...payload['scope'].split(' '));
  const scp = payload['scp'];
  if (typeof scp === 'string') out.push(...scp.split(' '));
  if (Array.isArray(scp)) out.push(...scp.filter((x): x is string => typeof x === 'string'));
  return out.filter((x) => x.length > 0);
}

/** jose's error codes → our bounded reasons; anything unrecognised is a bad token. */
/**
 * RFC 9068 access tokens say `typ: at+jwt`; most issuers still say `JWT` or nothing, and those are
 * accepted. Any other type (an ID token marked as such, a logout or security-event token, DPoP
 * proofs) is a token for something else and is refused.
 */
export function isAccessTokenType(typ: string | undefined): boolean {
  if (typ === undefined) return true;
  const type = typ.toLowerCase().replace(/^application\//, '');
  return type === 'at+jwt' || type === 'jwt';
}

export function joseFailureReason(err: unknown): AuthFailureReason {
  if (err instanceof VerifierUnavailable) return 'verifier-unavailable';
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return 'missing-claim';
    switch (err.claim) {
      case 'nbf':
        return 'not-yet-valid';
      case 'iss':
        return 'wrong-issuer';
      case 'aud':
        return 'wrong-audience';
      default:
        return 'malformed';
    }
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad-signature';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'bad-signature';
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return 'bad-signature';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'disallowed-algorithm';
  return 'malformed';
}

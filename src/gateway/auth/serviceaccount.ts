// Kubernetes ServiceAccount tokens as workload identity: the API server says whether a token is
// valid for our audience (TokenReview); we never verify those tokens ourselves.
//
// Reviews are remembered briefly by the token's SHA-256 (successes for `cacheTtlMs`, failures for
// `negativeTtlMs`, never past the token's own `exp`), so a busy agent costs the API server one
// review per TTL rather than one per request.
import crypto from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';
import { parseServiceAccountUsername, serviceAccountPrincipal } from './principal.ts';
import { Semaphore } from './semaphore.ts';
import { authFailure, type AuthResult, type CredentialVerifier } from './types.ts';

/** The answer of a TokenReview, as much of it as we use. */
export interface TokenReviewResult {
  authenticated: boolean;
  username?: string | undefined;
  uid?: string | undefined;
  groups?: readonly string[] | undefined;
  /** The audiences the API server found the token valid for (a subset of the requested ones). */
  audiences?: readonly string[] | undefined;
  error?: string | undefined;
}

/** Submits a TokenReview; throws when the API server cannot be asked (not when it says no). */
export interface TokenReviewer {
  review(token: string, audiences: readonly string[]): Promise<TokenReviewResult>;
}

export interface ServiceAccountVerifierOptions {
  audiences: readonly string[];
  reviewer: TokenReviewer;
  clock: Clock;
  logger: Logger;
  cacheTtlMs?: number;
  negativeTtlMs?: number;
  cacheSize?: number;
  /** TokenReviews in flight at once (default 16) and waiting (default 256); beyond, fail fast. */
  maxConcurrentReviews?: number;
  maxQueuedReviews?: number;
}

interface CachedReview {
  result: AuthResult;
  until: number;
}

export class ServiceAccountVerifier implements CredentialVerifier {
  readonly method = 'service-account' as const;
  readonly #audiences: readonly string[];
  readonly #reviewer: TokenReviewer;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  readonly #negativeTtlMs: number;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, CachedReview>();
  readonly #inflight = new Map<string, Promise<AuthResult>>();
  readonly #slots: Semaphore;

  constructor(options: ServiceAccountVerifierOptions) {
    if (options.audiences.length === 0)
      throw new Error('serviceAccountTokens needs at least one audience');
    this.#audiences = [...options.audiences];
    this.#reviewer = options.reviewer;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#ttlMs = options.cacheTtlMs ?? 10_000;
    this.#negativeTtlMs = options.negativeTtlMs ?? 5_000;
    this.#cacheSize = options.cacheSize ?? 10_000;
    // Unique junk tokens defeat the cache: bound what they can cost the API server.
    this.#slots = new Semaphore(
      options.maxConcurrentReviews ?? 16,
      options.maxQueuedReviews ?? 256,
    );
  }

  async verify(token: string): Promise<AuthResult> {
    const digest = crypto.createHash('sha256').update(token).digest('base64');
    const now = this.#clock.now().getTime();
    const cached = this.#cache.get(digest);
    if (cached !== undefined) {
      if (cached.until > now) return cached.result;
      this.#cache.delete(digest);
    }
    // Only ever a refusal, so reading the unverified claim is safe: it spares the API server.
    const exp = tokenExpiry(token);
    if (exp !== undefined && exp <= now) return authFailure('expired', { method: this.method });
    let pending = this.#inflight.get(digest);
    if (pending === undefined) {
      const slot = this.#slots.tryAcquire();
      if (slot === undefined) {
        this.#logger.warn('TokenReview refused: too many reviews queued');
        return authFailure('verifier-unavailable', { method: this.method });
      }
      pending = slot
        .then(() => this.#review(token, digest))
        .finally(() => {
          this.#slots.release();
          this.#inflight.delete(digest);
        });
      this.#inflight.set(digest, pending);
    }
    return pending;
  }

  async #review(token: string, digest: string): Promise<AuthResult> {
    let review: TokenReviewResult;
    try {
      review = await this.#reviewer.review(token, this.#audiences);
    } catch (err) {
      this.#logger.warn({ err }, 'TokenReview request failed');
      return authFailure('verifier-unavailable', { method: this.method });
    }
    const result = this.#judge(review);
    const now = this.#clock.now().getTime();
    let until = now + (result.ok ? this.#ttlMs : this.#negativeTtlMs);
    const exp = tokenExpiry(token);
    if (exp !== undefined) until = Math.min(until, exp);
    if (until > now) this.#remember(digest, { result, until });
    return result;
  }

  #judge(review: TokenReviewResult): AuthResult {
    if (!review.authenticated) {
      this.#logger.debug({ error: review.error }, 'TokenReview rejected the token');
      return authFailure('review-failed', { method: this.method });
    }
    // Defence in depth: the API server must have matched one of *our* audiences.
    const audiences = review.audiences ?? [];
    if (!audiences.some((a) => this.#audiences.includes(a))) {
      return authFailure('wrong-audience', { method: this.method });
    }
    const sa = parseServiceAccountUsername(review.username ?? '');
    // Another authenticator's user (a static token, a bootstrap token) is not workload identity.
    if (sa === undefined) return authFailure('review-failed', { method: this.method });
    const groups = (review.groups ?? []).filter((g) => typeof g === 'string' && g.length > 0);
    return {
      ok: true,
      method: this.method,
      principal: serviceAccountPrincipal(sa.namespace, sa.name, groups),
      credential: review.uid === undefined ? {} : { id: review.uid },
    };
  }

  #remember(digest: string, entry: CachedReview): void {
    if (this.#cache.size >= this.#cacheSize) {
      const oldest = this.#cache.keys().next().value as string;
      this.#cache.delete(oldest);
    }
    this.#cache.set(digest, entry);
  }
}

/** `exp` in ms when the token is a JWT that has one; only ever used to shorten a cache entry. */
function tokenExpiry(token: string): number | undefined {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

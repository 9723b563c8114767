/**
 * The real implementations the gateway apps are built with, shared by `mcpworks serve` and
 * `mcpworks gateway`: the policy engine, and an authenticator per snapshot (API keys from the
 * snapshot's Secret data, OIDC and ServiceAccount tokens per the McpServer's spec.auth).
 */
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { ApiKeyStore, ApiKeyVerifier } from './auth/apikeys.ts';
import { createAuthenticator, type AuthSpec } from './auth/authenticator.ts';
import type { TokenReviewer } from './auth/serviceaccount.ts';
import type { Authenticator } from './auth/types.ts';
import type { PolicyEngine } from './mcp.ts';
import { decide, egressGuardrails, visibleTools } from './policy/engine.ts';
import { serverKeyOf, type GatewaySnapshot } from './source/types.ts';

export const policyEngine: PolicyEngine = { decide, visibleTools, egressGuardrails };

export interface AuthenticatorFactoryOptions {
  /** The canonical URL of the server's MCP endpoint (RFC 8707 resource; OIDC audience). */
  resourceUrl(snapshot: GatewaySnapshot): string;
  /** Absent outside a cluster: ServiceAccount tokens are then not accepted. */
  tokenReviewer?: TokenReviewer;
  serviceAccountIssuer?: string;
  oidcCa?: string;
  clock: Clock;
  logger: Logger;
}

/** What a snapshot's spec.auth asks for minus what this process cannot verify, with the reasons. */
export function effectiveAuth(
  spec: AuthSpec,
  canReviewTokens: boolean,
): { auth: AuthSpec; dropped: string[] } {
  if (spec.serviceAccountTokens === undefined || canReviewTokens)
    return { auth: spec, dropped: [] };
  const { serviceAccountTokens: _dropped, ...rest } = spec;
  return {
    auth: rest,
    dropped: [
      'serviceAccountTokens: no Kubernetes API server to review tokens; ServiceAccount tokens are refused',
    ],
  };
}

export function snapshotAuthenticatorFactory(
  options: AuthenticatorFactoryOptions,
): (snapshot: GatewaySnapshot) => Authenticator {
  // Per server, one key store and one verifier for the life of the process: each snapshot gets
  // a new authenticator, but a Secret change only replaces the store's entries, so keys whose
  // entry did not change stay verified (no scrypt again, even under a flood), the hash slots
  // are shared, and the store's history tells a revoked key (removed) from one never issued.
  const servers = new Map<
    string,
    { store: ApiKeyStore; verifier: ApiKeyVerifier; revision: number }
  >();
  return (snapshot) => {
    const { auth } = effectiveAuth(snapshot.server.spec.auth, options.tokenReviewer !== undefined);
    const server = serverKeyOf(snapshot);
    let keys = servers.get(server);
    if (keys === undefined) {
      const store = new ApiKeyStore();
      const logger = options.logger.child({ component: 'auth' });
      const verifier = new ApiKeyVerifier({ store, clock: options.clock, logger });
      keys = { store, verifier, revision: -Infinity };
      servers.set(server, keys);
    }
    // An authenticator rebuilt for an older snapshot (a request that began before a reload)
    // must not bring back keys that a newer one removed.
    if (snapshot.revision >= keys.revision) {
      keys.store.replace(snapshot.apiKeySecretData ?? {});
      keys.revision = snapshot.revision;
    }
    return createAuthenticator({
      auth,
      resourceUrl: options.resourceUrl(snapshot),
      apiKeys: keys.store,
      apiKeyVerifier: keys.verifier,
      tokenReviewer: options.tokenReviewer,
      serviceAccountIssuer: options.serviceAccountIssuer,
      oidcCa: options.oidcCa,
      clock: options.clock,
      logger: options.logger,
    });
  };
}

/**
 * The real implementations the gateway apps are built with, shared by `mcpworks serve` and
 * `mcpworks gateway`: the policy engine, and an authenticator per snapshot (API keys from the
 * snapshot's Secret data, OIDC and ServiceAccount tokens per the McpServer's spec.auth).
 */
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { ApiKeyStore } from './auth/apikeys.ts';
import { createAuthenticator, type AuthSpec } from './auth/authenticator.ts';
import type { TokenReviewer } from './auth/serviceaccount.ts';
import type { Authenticator } from './auth/types.ts';
import type { PolicyEngine } from './mcp.ts';
import { decide, visibleTools } from './policy/engine.ts';
import { serverKeyOf, type GatewaySnapshot } from './source/types.ts';

export const policyEngine: PolicyEngine = { decide, visibleTools };

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
  // Per server, the key ids seen across snapshots: each snapshot gets a fresh store, and this
  // history is what lets it tell a revoked key (removed from the Secret) from one never issued.
  const keyHistory = new Map<string, ApiKeyStore>();
  return (snapshot) => {
    const { auth } = effectiveAuth(snapshot.server.spec.auth, options.tokenReviewer !== undefined);
    const entries = snapshot.apiKeySecretData ?? {};
    const server = serverKeyOf(snapshot);
    const history = keyHistory.get(server) ?? new ApiKeyStore();
    history.replace(entries);
    keyHistory.set(server, history);
    return createAuthenticator({
      auth,
      resourceUrl: options.resourceUrl(snapshot),
      apiKeys: ApiKeyStore.from(entries, history.revokedIds()),
      tokenReviewer: options.tokenReviewer,
      serviceAccountIssuer: options.serviceAccountIssuer,
      oidcCa: options.oidcCa,
      clock: options.clock,
      logger: options.logger,
    });
  };
}

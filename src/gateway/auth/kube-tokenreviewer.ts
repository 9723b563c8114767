// The real TokenReviewer: AuthenticationV1Api.createTokenReview against the cluster's API server.
// Kept apart so that code paths without ServiceAccount auth never load the Kubernetes client.
import {
  ApiException,
  AuthenticationV1Api,
  WellKnownApi,
  type KubeConfig,
} from '@kubernetes/client-node';
import type { TokenReviewer, TokenReviewResult } from './serviceaccount.ts';

export function kubeTokenReviewer(kubeConfig: KubeConfig): TokenReviewer {
  const api = kubeConfig.makeApiClient(AuthenticationV1Api);
  return {
    async review(token, audiences): Promise<TokenReviewResult> {
      let review;
      try {
        review = await api.createTokenReview({
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: { token, audiences: [...audiences] },
          },
        });
      } catch (err) {
        // The client's errors carry request and response bodies; the request holds the token.
        // Only the status code and a fixed text leave this function.
        const status = err instanceof ApiException ? `HTTP ${err.code}` : 'no response';
        // eslint-disable-next-line preserve-caught-error -- the cause would carry the token
        throw new Error(`TokenReview failed: ${status}`);
      }
      // The response echoes spec.token: read status only, never keep or log the object.
      const status = review.status ?? {};
      return {
        authenticated: status.authenticated === true,
        username: status.user?.username,
        uid: status.user?.uid,
        groups: status.user?.groups,
        audiences: status.audiences,
        error: status.error,
      };
    },
  };
}

/**
 * The cluster's ServiceAccount token issuer (its `--service-account-issuer`), read from the API
 * server's discovery document. Pass it as `serviceAccountIssuer` so that only tokens from this
 * issuer are sent to TokenReview.
 */
export async function discoverServiceAccountIssuer(kubeConfig: KubeConfig): Promise<string> {
  const raw: unknown = await kubeConfig
    .makeApiClient(WellKnownApi)
    .getServiceAccountIssuerOpenIDConfiguration();
  const doc: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
  const issuer = (doc as { issuer?: unknown } | null)?.issuer;
  if (typeof issuer !== 'string' || issuer.length === 0) {
    throw new Error('the API server published no ServiceAccount issuer');
  }
  return issuer;
}

// The real TokenReviewer: AuthenticationV1Api.createTokenReview against the cluster's API server.
// Kept apart so that code paths without ServiceAccount auth never load the Kubernetes client.
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { TokenReviewer, TokenReviewResult } from './serviceaccount.ts';

export function kubeTokenReviewer(kubeConfig: KubeConfig): TokenReviewer {
  const api = kubeConfig.makeApiClient(AuthenticationV1Api);
  return {
    async review(token, audiences): Promise<TokenReviewResult> {
      const review = await api.createTokenReview({
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: [...audiences] },
        },
      });
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

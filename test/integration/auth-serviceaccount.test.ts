// ServiceAccount tokens as workload identity against a real kube-apiserver: tokens requested with
// the TokenRequest API and checked with TokenReview, as a gateway pod would.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import {
  createAuthenticator,
  type AuthResult,
  type GatewayAuthenticator,
  type TokenReviewer,
} from '../../src/gateway/auth/index.ts';
import {
  discoverServiceAccountIssuer,
  kubeTokenReviewer,
} from '../../src/gateway/auth/kube-tokenreviewer.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';

const AUDIENCE = 'https://mcp.example.test/mcp/team/tools';

let cp: ControlPlane;
let core: CoreV1Api;

before(async () => {
  cp = await startControlPlane();
  core = cp.kubeConfig.makeApiClient(CoreV1Api);
});
after(() => cp?.stop());

async function serviceAccount(namespace: string, name: string): Promise<void> {
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
}

async function requestToken(namespace: string, name: string, audience: string): Promise<string> {
  const response = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [audience], expirationSeconds: 600 } },
  });
  const token = response.status?.token;
  assert.ok(token, 'TokenRequest returned no token');
  return token;
}

function gateway(
  reviewer: TokenReviewer,
  extra: { serviceAccountIssuer?: string } = {},
): GatewayAuthenticator {
  return createAuthenticator({
    auth: { serviceAccountTokens: { audiences: [AUDIENCE] } },
    resourceUrl: AUDIENCE,
    tokenReviewer: reviewer,
    logger: silentLogger(),
    ...extra,
  });
}

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

function assertRefused(result: AuthResult, reason: string) {
  assert.ok(!result.ok, `expected refusal ${reason}, got ${JSON.stringify(result)}`);
  assert.equal(result.reason, reason);
  assert.equal(result.status, 401);
}

describe('ServiceAccount tokens reviewed by the API server', () => {
  test('a token for our audience is accepted as its ServiceAccount', async () => {
    const ns = await cp.newNamespace('auth-sa');
    await serviceAccount(ns, 'agent');
    const token = await requestToken(ns, 'agent', AUDIENCE);
    const result = await gateway(kubeTokenReviewer(cp.kubeConfig)).authenticate(bearer(token));
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.method, 'service-account');
    assert.equal(result.principal.kind, 'ServiceAccount');
    assert.equal(result.principal.name, `system:serviceaccount:${ns}:agent`);
    assert.equal(result.principal.namespace, ns);
    assert.equal(result.principal.serviceAccountName, 'agent');
    assert.ok(result.principal.groups.includes(`system:serviceaccounts:${ns}`));
  });

  test('a token for another audience is refused', async () => {
    const ns = await cp.newNamespace('auth-sa');
    await serviceAccount(ns, 'agent');
    const token = await requestToken(ns, 'agent', 'https://some-other-service.example.test');
    const result = await gateway(kubeTokenReviewer(cp.kubeConfig)).authenticate(bearer(token));
    assertRefused(result, 'review-failed');
  });

  test('a token of a deleted ServiceAccount is refused', async () => {
    const ns = await cp.newNamespace('auth-sa');
    await serviceAccount(ns, 'agent');
    const token = await requestToken(ns, 'agent', AUDIENCE);
    await core.deleteNamespacedServiceAccount({ name: 'agent', namespace: ns });
    const result = await gateway(kubeTokenReviewer(cp.kubeConfig)).authenticate(bearer(token));
    assertRefused(result, 'review-failed');
  });

  test('the cluster issuer is discovered from the API server', async () => {
    assert.equal(await discoverServiceAccountIssuer(cp.kubeConfig), cp.serviceAccountIssuer);
  });

  test('with the discovered issuer set, real ServiceAccount tokens still pass', async () => {
    const ns = await cp.newNamespace('auth-sa');
    await serviceAccount(ns, 'agent');
    const auth = gateway(kubeTokenReviewer(cp.kubeConfig), {
      serviceAccountIssuer: await discoverServiceAccountIssuer(cp.kubeConfig),
    });
    const result = await auth.authenticate(bearer(await requestToken(ns, 'agent', AUDIENCE)));
    assert.ok(result.ok, JSON.stringify(result));
  });

  test('a forged token with the cluster issuer is refused', async () => {
    const ns = await cp.newNamespace('auth-sa');
    await serviceAccount(ns, 'agent');
    const [h, p] = (await requestToken(ns, 'agent', AUDIENCE)).split('.');
    const forged = `${h}.${p}.${Buffer.from('not a signature').toString('base64url')}`;
    const result = await gateway(kubeTokenReviewer(cp.kubeConfig), {
      serviceAccountIssuer: cp.serviceAccountIssuer,
    }).authenticate(bearer(forged));
    assertRefused(result, 'review-failed');
  });

  test('a gateway identity bound to system:auth-delegator can review tokens', async () => {
    const ns = await cp.newNamespace('auth-sa');
    await serviceAccount(ns, 'gateway');
    await serviceAccount(ns, 'agent');
    await cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: `${ns}-gateway-auth-delegator` },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'system:auth-delegator',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'gateway', namespace: ns }],
      },
    });
    const reviewer = kubeTokenReviewer(
      cp.kubeconfigFor({ token: await defaultAudienceToken(ns, 'gateway') }),
    );
    const result = await gateway(reviewer).authenticate(
      bearer(await requestToken(ns, 'agent', AUDIENCE)),
    );
    assert.ok(result.ok, JSON.stringify(result));
  });

  test('a gateway identity without TokenReview rights fails closed', async () => {
    const ns = await cp.newNamespace('auth-sa');
    await serviceAccount(ns, 'gateway');
    await serviceAccount(ns, 'agent');
    const reviewer = kubeTokenReviewer(
      cp.kubeconfigFor({ token: await defaultAudienceToken(ns, 'gateway') }),
    );
    const result = await gateway(reviewer).authenticate(
      bearer(await requestToken(ns, 'agent', AUDIENCE)),
    );
    assertRefused(result, 'verifier-unavailable');
  });

  test('a failed review never carries the token in its error', async () => {
    const ns = await cp.newNamespace('auth-sa');
    await serviceAccount(ns, 'gateway');
    await serviceAccount(ns, 'agent');
    const reviewer = kubeTokenReviewer(
      cp.kubeconfigFor({ token: await defaultAudienceToken(ns, 'gateway') }),
    );
    const token = await requestToken(ns, 'agent', AUDIENCE);
    const error = await reviewer.review(token, [AUDIENCE]).then(
      () => assert.fail('an identity without TokenReview rights was allowed to review'),
      (err: unknown) => err as Error,
    );
    assert.equal(error.message, 'TokenReview failed: HTTP 403');
    assert.ok(!`${error.message}${error.stack}${JSON.stringify(error)}`.includes(token));
  });
});

/** A token the API server itself accepts (its default audience is its issuer). */
async function defaultAudienceToken(namespace: string, name: string): Promise<string> {
  const response = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { expirationSeconds: 600 } },
  });
  const token = response.status?.token;
  assert.ok(token);
  return token;
}

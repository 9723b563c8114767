import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Auth } from '../../api/v1alpha1/mcpserver.ts';
import { manualClock } from '../../shared/clock.ts';
import { isMcpworksError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { ApiKeyStore, generateApiKey, hashApiKey } from './apikeys.ts';
import { createAuthenticator, type AuthenticatorOptions, type AuthSpec } from './authenticator.ts';
import { discoveryUrl } from './oidc.ts';
import type { TokenReviewer } from './serviceaccount.ts';

const RESOURCE = 'https://mcp.example.com/mcp/team/tools';
const ISSUER = 'https://idp.example.com';
const CLUSTER_ISSUER = 'https://kubernetes.default.svc';
const START = new Date('2026-06-01T12:00:00Z');

// The parsed McpServer type is accepted as it is.
const _specFromSchema: AuthSpec = {} as Auth;

const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
const fetchJson = async (url: string): Promise<unknown> => {
  if (url === discoveryUrl(ISSUER)) return { issuer: ISSUER, jwks_uri: `${ISSUER}/keys` };
  if (url === `${ISSUER}/keys`) return { keys: [jwk] };
  throw new Error(`unexpected fetch ${url}`);
};

function jwt(claims: { iss?: string; sub?: string; aud?: string } = {}): Promise<string> {
  const iat = Math.floor(START.getTime() / 1000);
  return new SignJWT({ sub: claims.sub ?? 'alice' })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? RESOURCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 300)
    .sign(privateKey);
}

const reviewCalls: string[] = [];
const reviewer: TokenReviewer = {
  async review(token) {
    reviewCalls.push(token);
    return {
      authenticated: true,
      username: 'system:serviceaccount:team:ci',
      groups: ['system:serviceaccounts'],
      audiences: [RESOURCE],
    };
  },
};

const key = generateApiKey('ci');
const store = ApiKeyStore.from({
  ci: JSON.stringify({ hash: await hashApiKey(key, { N: 1024 }), agent: 'ci-bot', groups: ['ci'] }),
});

const ALL: AuthSpec = {
  apiKeys: { secretRef: { name: 'keys' } },
  oidc: { issuer: ISSUER, audiences: [RESOURCE] },
  serviceAccountTokens: { audiences: [RESOURCE] },
};

function authenticator(auth: AuthSpec, extra: Partial<AuthenticatorOptions> = {}) {
  return createAuthenticator({
    auth,
    resourceUrl: RESOURCE,
    apiKeys: store,
    tokenReviewer: reviewer,
    fetchJson,
    clock: manualClock(START),
    logger: silentLogger(),
    ...extra,
  });
}

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

describe('createAuthenticator routing', () => {
  test('an mcpw_ token is checked as an API key', async () => {
    const result = await authenticator(ALL).authenticate(bearer(key));
    assert.ok(result.ok);
    assert.equal(result.method, 'api-key');
    assert.equal(result.principal.name, 'ci-bot');
  });

  test('a JWT from the OIDC issuer is verified as OIDC', async () => {
    const result = await authenticator(ALL).authenticate(bearer(await jwt()));
    assert.ok(result.ok);
    assert.equal(result.method, 'oidc');
    assert.equal(result.principal.name, 'alice');
  });

  test('any other JWT goes to TokenReview when ServiceAccount tokens are enabled', async () => {
    const token = await jwt({ iss: CLUSTER_ISSUER });
    const result = await authenticator(ALL).authenticate(bearer(token));
    assert.ok(result.ok);
    assert.equal(result.method, 'service-account');
    assert.equal(result.principal.kind, 'ServiceAccount');
    assert.ok(reviewCalls.includes(token));
  });

  test('with a ServiceAccount issuer set, other issuers never reach TokenReview', async () => {
    const token = await jwt({ iss: 'https://elsewhere.example.com' });
    const result = await authenticator(ALL, { serviceAccountIssuer: CLUSTER_ISSUER }).authenticate(
      bearer(token),
    );
    assert.ok(!result.ok);
    assert.equal(result.reason, 'wrong-issuer');
    assert.ok(!reviewCalls.includes(token));
  });

  test('a JWT from another issuer is refused when only OIDC is enabled', async () => {
    const result = await authenticator({ oidc: ALL.oidc }).authenticate(
      bearer(await jwt({ iss: 'https://elsewhere.example.com' })),
    );
    assert.ok(!result.ok);
    assert.equal(result.reason, 'wrong-issuer');
    assert.equal(result.error, 'invalid_token');
  });

  test('an API key is refused when API keys are not enabled', async () => {
    const result = await authenticator({ oidc: ALL.oidc }).authenticate(bearer(key));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'method-not-enabled');
  });

  test('a JWT is refused when no token method is enabled', async () => {
    const result = await authenticator({ apiKeys: ALL.apiKeys }).authenticate(bearer(await jwt()));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'method-not-enabled');
  });

  test('a bearer value that is neither an API key nor a JWT is malformed', async () => {
    const result = await authenticator(ALL).authenticate(bearer('opaque-token'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'malformed');
    assert.equal(result.status, 401);
  });

  test('a credential in the query string is refused with 400', async () => {
    const result = await authenticator(ALL).authenticate({
      ...bearer(key),
      url: `/mcp?api_key=${key}`,
    });
    assert.ok(!result.ok);
    assert.equal(result.status, 400);
    assert.equal(result.reason, 'token-in-query');
  });
});

describe('failing closed', () => {
  test('a verifier that throws refuses the request', async () => {
    class BrokenStore extends ApiKeyStore {
      override lookup(): never {
        throw new TypeError('bug');
      }
    }
    const result = await authenticator(
      { apiKeys: ALL.apiKeys },
      { apiKeys: new BrokenStore() },
    ).authenticate(bearer(key));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'verifier-unavailable');
  });
});

describe('anonymous access', () => {
  test('is refused when not enabled', async () => {
    const result = await authenticator(ALL).authenticate({ headers: {} });
    assert.ok(!result.ok);
    assert.equal(result.status, 401);
    assert.equal(result.reason, 'missing-credentials');
    assert.equal(result.error, undefined);
  });

  test('is refused when anonymous.enabled is false', async () => {
    const result = await authenticator({ ...ALL, anonymous: { enabled: false } }).authenticate({
      headers: {},
    });
    assert.equal(result.ok, false);
  });

  test('gives the Anonymous principal when enabled', async () => {
    const result = await authenticator({ anonymous: { enabled: true } }).authenticate({
      headers: {},
    });
    assert.ok(result.ok);
    assert.equal(result.method, 'anonymous');
    assert.deepEqual(result.principal, {
      kind: 'Anonymous',
      name: 'anonymous',
      groups: [],
      authMethod: 'anonymous',
    });
  });

  test('a bad credential is not downgraded to anonymous', async () => {
    const auth = authenticator({ ...ALL, anonymous: { enabled: true } });
    const result = await auth.authenticate(bearer(generateApiKey('ci')));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'unknown-key');
  });

  test('with no method and anonymous off, every request is refused', async () => {
    const auth = authenticator({});
    assert.deepEqual(auth.methods, []);
    const results = await Promise.all([
      auth.authenticate({ headers: {} }),
      auth.authenticate(bearer(key)),
      auth.authenticate(bearer(await jwt())),
    ]);
    assert.deepEqual(
      results.map((r) => r.ok),
      [false, false, false],
    );
  });
});

describe('createAuthenticator options', () => {
  const rejects = (options: Partial<AuthenticatorOptions>, pattern: RegExp) =>
    assert.throws(
      () => authenticator(options.auth ?? {}, options),
      (err: unknown) => isMcpworksError(err, 'InvalidInput') && pattern.test(err.message),
    );

  test('apiKeys without a key store are rejected', () => {
    rejects({ auth: { apiKeys: ALL.apiKeys }, apiKeys: undefined }, /key store/);
  });

  test('serviceAccountTokens without a TokenReviewer are rejected', () => {
    rejects(
      { auth: { serviceAccountTokens: ALL.serviceAccountTokens }, tokenReviewer: undefined },
      /TokenReviewer/,
    );
  });

  test('an http OIDC issuer is rejected', () => {
    rejects(
      { auth: { oidc: { issuer: 'http://idp.example.com', audiences: [RESOURCE] } } },
      /https/,
    );
  });

  test('OIDC without audiences is rejected', () => {
    rejects({ auth: { oidc: { issuer: ISSUER, audiences: [] } } }, /audience/);
  });

  test('an unbounded clock skew is rejected', () => {
    rejects(
      { auth: { oidc: { issuer: ISSUER, audiences: [RESOURCE], clockSkewSeconds: 3600 } } },
      /clockSkew/,
    );
  });

  test('a relative resource URL is rejected', () => {
    rejects({ auth: {}, resourceUrl: '/mcp' }, /resourceUrl/);
  });
});

describe('challenge and metadata', () => {
  test('the challenge points at the RFC 9728 metadata of this resource', () => {
    assert.equal(
      authenticator(ALL).challenge(),
      'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp/team/tools"',
    );
  });

  test('the metadata names the OIDC issuer and the required scopes', () => {
    const auth = authenticator({
      oidc: { issuer: ISSUER, audiences: [RESOURCE], requiredScopes: ['mcp:tools'] },
    });
    assert.deepEqual(auth.metadata(), {
      resource: RESOURCE,
      authorization_servers: [ISSUER],
      scopes_supported: ['mcp:tools'],
      bearer_methods_supported: ['header'],
    });
  });
});

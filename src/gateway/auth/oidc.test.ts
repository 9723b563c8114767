// OIDC verification against an in-memory issuer: key rotation, caching, claim mapping, scopes.
// Every failure path over real HTTPS discovery lives in test/integration/auth-oidc.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { manualClock } from '../../shared/clock.ts';
import { silentLogger } from '../../shared/logger.ts';
import { discoveryUrl, OidcVerifier, type OidcSettings } from './oidc.ts';

const ISSUER = 'https://idp.example.com';
const AUDIENCE = 'https://mcp.example.com/mcp/team/tools';
const START = new Date('2026-06-01T12:00:00Z');

interface Key {
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  jwk: JWK;
}

async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return {
    kid,
    privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' },
  };
}

/** An issuer whose published keys and availability the test controls; counts fetches. */
function memoryIssuer(keys: Key[]) {
  const state = { keys, up: true, fetches: 0, discoveryIssuer: ISSUER };
  const fetchJson = async (url: string): Promise<unknown> => {
    state.fetches++;
    if (!state.up) throw new Error('connection refused');
    if (url === discoveryUrl(ISSUER)) {
      return { issuer: state.discoveryIssuer, jwks_uri: `${ISSUER}/keys` };
    }
    if (url === `${ISSUER}/keys`) return { keys: state.keys.map((k) => k.jwk) };
    throw new Error(`unexpected fetch ${url}`);
  };
  return { state, fetchJson };
}

function mint(key: Key, claims: JWTPayload = {}, now = START): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({ sub: 'alice', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 300)
    .sign(key.privateKey);
}

function settings(overrides: Partial<OidcSettings> = {}): OidcSettings {
  return {
    issuer: ISSUER,
    audiences: [AUDIENCE],
    agentClaim: 'sub',
    groupsClaim: 'groups',
    clockSkewSeconds: 60,
    maxTokenLifetimeSeconds: 86_400,
    ...overrides,
  };
}

function verifier(
  fetchJson: (url: string) => Promise<unknown>,
  overrides: Partial<OidcSettings> = {},
) {
  const clock = manualClock(START);
  const v = new OidcVerifier({
    settings: settings(overrides),
    fetchJson,
    clock,
    logger: silentLogger(),
    keysMaxAgeMs: 600_000,
    refreshCooldownMs: 30_000,
  });
  return { v, clock };
}

describe('OidcVerifier', () => {
  test('claims map to the agent and its groups', async () => {
    const key = await newKey('k1');
    const { v } = verifier(memoryIssuer([key]).fetchJson);
    const result = await v.verify(await mint(key, { groups: ['sre', 'oncall'], jti: 'abc' }));
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.principal, {
      kind: 'Agent',
      name: 'alice',
      groups: ['sre', 'oncall'],
      authMethod: 'oidc',
    });
    assert.equal(result.credential.id, 'abc');
    assert.equal(result.credential.issuer, ISSUER);
  });

  test('agentClaim and groupsClaim choose other claims', async () => {
    const key = await newKey('k1');
    const { v } = verifier(memoryIssuer([key]).fetchJson, {
      agentClaim: 'email',
      groupsClaim: 'roles',
    });
    const result = await v.verify(await mint(key, { email: 'bot@example.com', roles: 'admin' }));
    assert.ok(result.ok);
    assert.equal(result.principal.name, 'bot@example.com');
    assert.deepEqual(result.principal.groups, ['admin']);
  });

  test('a token without the agent claim is refused', async () => {
    const key = await newKey('k1');
    const { v } = verifier(memoryIssuer([key]).fetchJson, { agentClaim: 'email' });
    const result = await v.verify(await mint(key));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'missing-claim');
  });

  test('a groups claim of the wrong type is refused rather than ignored', async () => {
    const key = await newKey('k1');
    const { v } = verifier(memoryIssuer([key]).fetchJson);
    const result = await v.verify(await mint(key, { groups: [1, 2] }));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'malformed');
  });

  test('a token without exp is refused', async () => {
    const key = await newKey('k1');
    const { v } = verifier(memoryIssuer([key]).fetchJson);
    const token = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .sign(key.privateKey);
    const result = await v.verify(token);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'missing-claim');
  });

  test('missing required scopes give 403 insufficient-scope naming them', async () => {
    const key = await newKey('k1');
    const { v } = verifier(memoryIssuer([key]).fetchJson, {
      requiredScopes: ['mcp:tools', 'mcp:call'],
    });
    const result = await v.verify(await mint(key, { scope: 'mcp:tools openid' }));
    assert.ok(!result.ok);
    assert.equal(result.status, 403);
    assert.equal(result.reason, 'insufficient-scope');
    assert.equal(result.error, 'insufficient_scope');
    assert.deepEqual(result.scope, ['mcp:tools', 'mcp:call']);
  });

  test('required scopes are found in `scope` or `scp`', async () => {
    const key = await newKey('k1');
    const { v } = verifier(memoryIssuer([key]).fetchJson, { requiredScopes: ['mcp:tools'] });
    assert.ok((await v.verify(await mint(key, { scope: 'openid mcp:tools' }))).ok);
    assert.ok((await v.verify(await mint(key, { scp: ['mcp:tools'] }))).ok);
  });

  test('keys are fetched once and reused', async () => {
    const key = await newKey('k1');
    const issuer = memoryIssuer([key]);
    const { v } = verifier(issuer.fetchJson);
    for (let i = 0; i < 3; i++) assert.ok((await v.verify(await mint(key))).ok);
    assert.equal(issuer.state.fetches, 2); // discovery + JWKS
  });

  test('a token from a rotated-in key triggers one refresh and verifies', async () => {
    const k1 = await newKey('k1');
    const k2 = await newKey('k2');
    const issuer = memoryIssuer([k1]);
    const { v, clock } = verifier(issuer.fetchJson);
    assert.ok((await v.verify(await mint(k1))).ok);
    issuer.state.keys = [k1, k2];
    clock.advance(31_000);
    assert.ok((await v.verify(await mint(k2, {}, clock.now()))).ok);
  });

  test('unknown kids do not make every request refetch the JWKS', async () => {
    const k1 = await newKey('k1');
    const stranger = await newKey('zz');
    const issuer = memoryIssuer([k1]);
    const { v } = verifier(issuer.fetchJson);
    assert.ok((await v.verify(await mint(k1))).ok);
    const before = issuer.state.fetches;
    for (let i = 0; i < 5; i++) {
      const result = await v.verify(await mint(stranger));
      assert.ok(!result.ok);
      assert.equal(result.reason, 'bad-signature');
    }
    assert.ok(issuer.state.fetches - before <= 2, `fetched ${issuer.state.fetches - before} times`);
  });

  test('an unreachable issuer fails closed with verifier-unavailable', async () => {
    const key = await newKey('k1');
    const issuer = memoryIssuer([key]);
    issuer.state.up = false;
    const { v } = verifier(issuer.fetchJson);
    const result = await v.verify(await mint(key));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'verifier-unavailable');
    assert.equal(result.status, 401);
  });

  test('known keys keep working while the issuer is down', async () => {
    const key = await newKey('k1');
    const issuer = memoryIssuer([key]);
    const { v, clock } = verifier(issuer.fetchJson);
    assert.ok((await v.verify(await mint(key))).ok);
    issuer.state.up = false;
    clock.advance(11 * 60_000); // past keysMaxAgeMs: a refresh is attempted and fails
    assert.ok((await v.verify(await mint(key, {}, clock.now()))).ok);
  });

  test('a discovery document naming another issuer is not trusted', async () => {
    const key = await newKey('k1');
    const issuer = memoryIssuer([key]);
    issuer.state.discoveryIssuer = 'https://evil.example.com';
    const { v } = verifier(issuer.fetchJson);
    const result = await v.verify(await mint(key));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'verifier-unavailable');
  });

  test('an issuer that was down at start is retried within seconds, not on every request', async () => {
    const key = await newKey('k1');
    const issuer = memoryIssuer([key]);
    issuer.state.up = false;
    const { v, clock } = verifier(issuer.fetchJson);
    assert.equal((await v.verify(await mint(key))).ok, false);
    assert.equal((await v.verify(await mint(key))).ok, false);
    assert.equal(issuer.state.fetches, 1);
    issuer.state.up = true;
    clock.advance(5_000);
    assert.ok((await v.verify(await mint(key, {}, clock.now()))).ok);
  });

  describe('verified-token cache', () => {
    function fastRefreshing(fetchJson: (url: string) => Promise<unknown>) {
      const clock = manualClock(START);
      const v = new OidcVerifier({
        settings: settings(),
        fetchJson,
        clock,
        logger: silentLogger(),
        keysMaxAgeMs: 1_000,
        refreshCooldownMs: 0,
      });
      return { v, clock };
    }

    test('a repeated token is not verified again', async () => {
      const key = await newKey('k1');
      const issuer = memoryIssuer([key]);
      const { v, clock } = fastRefreshing(issuer.fetchJson);
      const token = await mint(key);
      assert.ok((await v.verify(token)).ok);
      const fetches = issuer.state.fetches;
      issuer.state.keys = []; // a full verification would now fail
      clock.advance(1_500);
      assert.ok((await v.verify(token)).ok);
      assert.equal(issuer.state.fetches, fetches);
    });

    test('a cached token still expires', async () => {
      const key = await newKey('k1');
      const { v, clock } = verifier(memoryIssuer([key]).fetchJson);
      const token = await mint(key); // exp = START + 300 s; skew 60 s
      assert.ok((await v.verify(token)).ok);
      clock.advance(360_001);
      const result = await v.verify(token);
      assert.ok(!result.ok);
      assert.equal(result.reason, 'expired');
    });

    test('a new key set voids cached verifications', async () => {
      const k1 = await newKey('k1');
      const k2 = await newKey('k2');
      const issuer = memoryIssuer([k1]);
      const { v } = fastRefreshing(issuer.fetchJson);
      const old = await mint(k1);
      assert.ok((await v.verify(old)).ok);
      issuer.state.keys = [k2]; // k1 withdrawn
      assert.ok((await v.verify(await mint(k2))).ok); // unknown kid: the key set is reloaded
      const result = await v.verify(old);
      assert.ok(!result.ok);
      assert.equal(result.reason, 'bad-signature');
    });

    test('each request gets its own principal object', async () => {
      const key = await newKey('k1');
      const { v } = verifier(memoryIssuer([key]).fetchJson);
      const token = await mint(key, { groups: ['sre'] });
      const first = await v.verify(token);
      assert.ok(first.ok);
      first.principal.groups.push('admin');
      const second = await v.verify(token);
      assert.ok(second.ok);
      assert.deepEqual(second.principal.groups, ['sre']);
    });
  });
});

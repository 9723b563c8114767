// OIDC bearer tokens end to end through the authenticator: real JWTs signed by keys made here,
// served by an HTTPS issuer on 127.0.0.1 (real discovery, real JWKS, a CA the gateway is told to
// trust). One test per way a token can be wrong.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  base64url,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  UnsecuredJWT,
  type JWTPayload,
} from 'jose';
import {
  createAuthenticator,
  type AuthResult,
  type GatewayAuthenticator,
} from '../../src/gateway/auth/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { createPki } from '../harness/pki.ts';

const RESOURCE = 'https://mcp.example.com/mcp/team/tools';
const NOW = new Date('2026-06-01T12:00:00Z');
const nowSeconds = Math.floor(NOW.getTime() / 1000);

let dir: string;
let server: Server;
let issuer: string;
let ca: string;
const requests: string[] = [];
const signing = await generateKeyPair('RS256');
const stranger = await generateKeyPair('RS256');
const publicJwk = { ...(await exportJWK(signing.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpworks-auth-oidc-'));
  const pki = await createPki(dir);
  ca = pki.caCert;
  server = createServer({ cert: pki.servingCert, key: pki.servingKey }, (req, res) => {
    requests.push(req.url ?? '');
    const send = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/.well-known/openid-configuration') {
      return send({
        issuer,
        jwks_uri: `${issuer}/keys`,
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (req.url === '/keys') return send({ keys: [publicJwk] });
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  issuer = `https://127.0.0.1:${address.port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

function gateway(requiredScopes?: string[]): GatewayAuthenticator {
  return createAuthenticator({
    auth: {
      oidc: {
        issuer,
        audiences: [RESOURCE],
        clockSkewSeconds: 60,
        ...(requiredScopes ? { requiredScopes } : {}),
      },
    },
    resourceUrl: RESOURCE,
    oidcCa: ca,
    clock: manualClock(NOW),
    logger: silentLogger(),
  });
}

/** A valid token; each modifier breaks one thing. */
async function token(
  modify: {
    claims?: JWTPayload;
    key?: CryptoKeyLike;
    iss?: string;
    aud?: string;
    typ?: string;
  } = {},
): Promise<string> {
  return new SignJWT({ sub: 'alice', groups: ['sre'], ...modify.claims })
    .setProtectedHeader({
      alg: 'RS256',
      kid: 'k1',
      ...(modify.typ === undefined ? {} : { typ: modify.typ }),
    })
    .setIssuer(modify.iss ?? issuer)
    .setAudience(modify.aud ?? RESOURCE)
    .setIssuedAt(nowSeconds - 10)
    .setExpirationTime((modify.claims?.exp as number | undefined) ?? nowSeconds + 300)
    .sign(modify.key ?? signing.privateKey);
}
type CryptoKeyLike = Parameters<SignJWT['sign']>[0];

async function authenticate(auth: GatewayAuthenticator, credential?: string): Promise<AuthResult> {
  return auth.authenticate({
    headers: credential === undefined ? {} : { authorization: `Bearer ${credential}` },
  });
}

function assertRefused(result: AuthResult, reason: string, status = 401) {
  assert.ok(!result.ok, `expected refusal ${reason}, got ${JSON.stringify(result)}`);
  assert.equal(result.reason, reason);
  assert.equal(result.status, status);
}

describe('OIDC tokens over real discovery and JWKS', () => {
  test('a valid token is accepted with the mapped identity', async () => {
    const result = await authenticate(gateway(), await token());
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.method, 'oidc');
    assert.equal(result.principal.name, 'alice');
    assert.deepEqual(result.principal.groups, ['sre']);
  });

  test('discovery and the JWKS are fetched once for many tokens', async () => {
    const auth = gateway();
    const before = requests.length;
    for (let i = 0; i < 5; i++) assert.ok((await authenticate(auth, await token())).ok);
    assert.deepEqual(requests.slice(before), ['/.well-known/openid-configuration', '/keys']);
  });

  test('a missing token is refused with a bare challenge', async () => {
    const auth = gateway();
    const result = await authenticate(auth);
    assertRefused(result, 'missing-credentials');
    assert.ok(!result.ok);
    assert.match(auth.challenge(result), /^Bearer resource_metadata="[^"]+"$/);
  });

  test('access-token types are accepted: at+jwt (RFC 9068), JWT, or none', async () => {
    for (const typ of ['at+jwt', 'application/at+jwt', 'JWT', undefined]) {
      const result = await authenticate(gateway(), await token(typ === undefined ? {} : { typ }));
      assert.ok(result.ok, `${typ}: ${JSON.stringify(result)}`);
    }
  });

  test('a token of another type (logout, security event, DPoP proof) is refused', async () => {
    for (const typ of ['logout+jwt', 'secevent+jwt', 'dpop+jwt', 'JOSE']) {
      assertRefused(await authenticate(gateway(), await token({ typ })), 'wrong-token-type');
    }
  });

  test('a token valid for longer than the maximum lifetime is refused, with or without iat', async () => {
    const longLived = await token({ claims: { exp: nowSeconds - 10 + 86_400 * 7 } });
    assertRefused(await authenticate(gateway(), longLived), 'lifetime-too-long');
    const noIat = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience(RESOURCE)
      .setExpirationTime(nowSeconds + 86_400 * 2)
      .sign(signing.privateKey);
    assertRefused(await authenticate(gateway(), noIat), 'lifetime-too-long');
    const day = await token({ claims: { exp: nowSeconds - 10 + 86_400 } });
    assert.ok((await authenticate(gateway(), day)).ok, 'exactly the maximum is accepted');
  });

  test('a malformed token is refused', async () => {
    assertRefused(await authenticate(gateway(), 'eyJhbGciOiJSUzI1NiJ9.not-json.sig'), 'malformed');
  });

  test('a token that is a JWT in shape only is refused', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'RS256', kid: 'k1' }));
    const payload = base64url.encode(JSON.stringify({ iss: issuer, sub: 'alice', aud: RESOURCE }));
    assertRefused(await authenticate(gateway(), `${header}.${payload}.c2ln`), 'bad-signature');
  });

  test('an expired token is refused', async () => {
    const result = await authenticate(gateway(), await token({ claims: { exp: nowSeconds - 61 } }));
    assertRefused(result, 'expired');
    assert.ok(!result.ok);
    assert.match(gateway().challenge(result), /error="invalid_token"/);
  });

  test('a token expired within the allowed clock skew is accepted', async () => {
    assert.ok(
      (await authenticate(gateway(), await token({ claims: { exp: nowSeconds - 30 } }))).ok,
    );
  });

  test('a not-yet-valid token is refused', async () => {
    assertRefused(
      await authenticate(gateway(), await token({ claims: { nbf: nowSeconds + 120 } })),
      'not-yet-valid',
    );
  });

  test('a token from another issuer is refused', async () => {
    assertRefused(
      await authenticate(gateway(), await token({ iss: 'https://evil.example.com' })),
      'wrong-issuer',
    );
  });

  test('a token for another audience is refused', async () => {
    assertRefused(
      await authenticate(gateway(), await token({ aud: 'https://other.example.com/mcp' })),
      'wrong-audience',
    );
  });

  test('a token signed by another key under a known kid is refused', async () => {
    assertRefused(
      await authenticate(gateway(), await token({ key: stranger.privateKey })),
      'bad-signature',
    );
  });

  test('a token with a tampered payload is refused', async () => {
    const [h, , s] = (await token()).split('.');
    const forged = base64url.encode(
      JSON.stringify({ iss: issuer, sub: 'admin', aud: RESOURCE, exp: nowSeconds + 300 }),
    );
    assertRefused(await authenticate(gateway(), `${h}.${forged}.${s}`), 'bad-signature');
  });

  test('an unsigned token (alg "none") is refused', async () => {
    const unsigned = new UnsecuredJWT({ sub: 'alice' })
      .setIssuer(issuer)
      .setAudience(RESOURCE)
      .setExpirationTime(nowSeconds + 300)
      .encode();
    assertRefused(await authenticate(gateway(), unsigned), 'disallowed-algorithm');
  });

  test('an HS256 token keyed with the public key is refused (algorithm confusion)', async () => {
    const publicPem = new TextEncoder().encode(await exportSPKI(signing.publicKey));
    const confused = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience(RESOURCE)
      .setExpirationTime(nowSeconds + 300)
      .sign(publicPem);
    assertRefused(await authenticate(gateway(), confused), 'disallowed-algorithm');
  });

  test('a token without the required scope gets 403 insufficient_scope', async () => {
    const auth = gateway(['mcp:tools']);
    const result = await authenticate(auth, await token({ claims: { scope: 'openid' } }));
    assertRefused(result, 'insufficient-scope', 403);
    assert.ok(!result.ok);
    assert.match(auth.challenge(result), /error="insufficient_scope", .*scope="mcp:tools"/);
  });

  test('an issuer whose certificate is not trusted cannot be used', async () => {
    const untrusting = createAuthenticator({
      auth: { oidc: { issuer, audiences: [RESOURCE] } },
      resourceUrl: RESOURCE,
      clock: manualClock(NOW),
      logger: silentLogger(),
    });
    assertRefused(await authenticate(untrusting, await token()), 'verifier-unavailable');
  });
});

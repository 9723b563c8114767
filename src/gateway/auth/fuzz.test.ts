// Properties over hostile input: whatever a client sends, authentication answers (never throws),
// and only a genuine credential succeeds.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { base64url, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { manualClock } from '../../shared/clock.ts';
import { createLogger } from '../../shared/logger.ts';
import { ApiKeyStore, generateApiKey, hashApiKey } from './apikeys.ts';
import { createAuthenticator } from './authenticator.ts';
import { discoveryUrl } from './oidc.ts';

const RESOURCE = 'https://mcp.example.com/mcp/team/tools';
const ISSUER = 'https://idp.example.com';
const START = new Date('2026-06-01T12:00:00Z');
const RUNS = { numRuns: 200 };

const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
const key = generateApiKey('ci');
const store = ApiKeyStore.from({
  ci: JSON.stringify({ hash: await hashApiKey(key, { N: 1024 }), agent: 'ci-bot' }),
});
const iat = Math.floor(START.getTime() / 1000);
const validJwt = await new SignJWT({ sub: 'alice' })
  .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
  .setIssuer(ISSUER)
  .setAudience(RESOURCE)
  .setIssuedAt(iat)
  .setExpirationTime(iat + 300)
  .sign(privateKey);

let logged = '';
const logger = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk, _enc, done) {
      logged += String(chunk);
      done();
    },
  }),
});

const auth = createAuthenticator({
  auth: {
    apiKeys: { secretRef: { name: 'keys' } },
    oidc: { issuer: ISSUER, audiences: [RESOURCE] },
    serviceAccountTokens: { audiences: [RESOURCE] },
  },
  resourceUrl: RESOURCE,
  apiKeys: store,
  tokenReviewer: { review: async () => ({ authenticated: false, error: 'invalid token' }) },
  fetchJson: async (url) =>
    url === discoveryUrl(ISSUER) ? { issuer: ISSUER, jwks_uri: `${ISSUER}/keys` } : { keys: [jwk] },
  clock: manualClock(START),
  logger,
});

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('authentication under hostile input', () => {
  test('the genuine credentials used below do authenticate', async () => {
    for (const token of [key, validJwt]) {
      const result = await auth.authenticate({ headers: { authorization: `Bearer ${token}` } });
      assert.ok(result.ok, JSON.stringify(result));
    }
  });

  test('arbitrary Authorization values never authenticate and never throw', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300 }), async (value) => {
        const result = await auth.authenticate({ headers: { authorization: value } });
        assert.equal(result.ok, false);
      }),
      RUNS,
    );
  });

  test('arbitrary bearer tokens shaped like ours never authenticate', async () => {
    const token = fc.oneof(
      fc.stringMatching(/^mcpw_[a-z0-9]{1,8}_[A-Za-z0-9_-]{32,50}$/),
      fc
        .tuple(fc.json(), fc.json(), fc.stringMatching(/^[A-Za-z0-9_-]{0,90}$/))
        .map(([h, p, s]) => `${base64url.encode(h)}.${base64url.encode(p)}.${s}`),
    );
    await fc.assert(
      fc.asyncProperty(token, async (t) => {
        const result = await auth.authenticate({ headers: { authorization: `Bearer ${t}` } });
        assert.equal(result.ok, false);
      }),
      RUNS,
    );
  });

  test('changing any character of a valid JWT makes it fail', async () => {
    const mutation = fc.record({
      at: fc.nat({ max: validJwt.length - 1 }),
      char: fc.constantFrom(...B64URL),
    });
    await fc.assert(
      fc.asyncProperty(mutation, async ({ at, char }) => {
        const mutated = validJwt.slice(0, at) + char + validJwt.slice(at + 1);
        // Some changes only flip unused padding bits of a segment's last character.
        fc.pre(
          mutated.split('.').some((seg, i) => {
            const original = validJwt.split('.')[i] ?? '';
            try {
              return Buffer.compare(base64url.decode(seg), base64url.decode(original)) !== 0;
            } catch {
              return true;
            }
          }),
        );
        const result = await auth.authenticate({ headers: { authorization: `Bearer ${mutated}` } });
        assert.equal(result.ok, false);
      }),
      RUNS,
    );
  });

  test('arbitrary header sets never throw', async () => {
    const headers = fc.dictionary(
      fc.constantFrom('authorization', 'Authorization', 'x-api-key', 'cookie', 'host'),
      fc.oneof(
        fc.string({ maxLength: 100 }),
        fc.array(fc.string({ maxLength: 50 }), { maxLength: 3 }),
      ),
    );
    await fc.assert(
      fc.asyncProperty(headers, fc.string({ maxLength: 100 }), async (h, url) => {
        const result = await auth.authenticate({ headers: h, url: `/mcp?${url}` });
        assert.equal(typeof result.ok, 'boolean');
      }),
      RUNS,
    );
  });

  test('no credential ever reaches the log', () => {
    assert.ok(logged.length > 0, 'debug logging produced nothing to check');
    assert.ok(!logged.includes(key.slice(10)), 'an API key was logged');
    assert.ok(!logged.includes(validJwt.split('.')[2] ?? '-'), 'a JWT was logged');
  });
});

// What authentication costs per request, on the paths a busy gateway takes: a cached API key, an
// OIDC JWT with the JWKS cached, a ServiceAccount token with its review cached. Baselines are the
// bare primitive each path cannot avoid (a SHA-256 of the key; jose's jwtVerify with the key in
// hand), measured in the same run.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import {
  ApiKeyStore,
  createAuthenticator,
  generateApiKey,
  hashApiKey,
  type GatewayAuthenticator,
} from '../../src/gateway/auth/index.ts';
import { SCRYPT_DEFAULTS } from '../../src/gateway/auth/apikeys.ts';
import { discoveryUrl } from '../../src/gateway/auth/oidc.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { percentile } from '../harness/stats.ts';
import type { BenchContext, BenchFigure } from './types.ts';

const RESOURCE = 'https://mcp.example.com/mcp/team/tools';
const ISSUER = 'https://idp.example.com';
const CLUSTER_ISSUER = 'https://kubernetes.default.svc';
const ITERATIONS = 5_000;
const WARMUP = 500;

async function sampleUs(fn: () => Promise<unknown> | unknown): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const out: number[] = new Array<number>(ITERATIONS);
  for (let i = 0; i < ITERATIONS; i++) {
    const start = performance.now();
    await fn();
    out[i] = (performance.now() - start) * 1000;
  }
  return out;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

function figures(
  name: string,
  samples: number[],
  baseline: { name: string; samples: number[] } | undefined,
  goal?: { text: string; maxUs: number },
): BenchFigure[] {
  const p50 = r2(percentile(samples, 50));
  const p99 = r2(percentile(samples, 99));
  const base = baseline === undefined ? undefined : r2(percentile(baseline.samples, 50));
  const f50: BenchFigure = { suite: 'auth', name: `${name} p50`, value: p50, unit: 'us' };
  if (base !== undefined && baseline !== undefined) {
    f50.baseline = { name: `${baseline.name} p50`, value: base };
    f50.ratio = r2(p50 / base);
  }
  if (goal !== undefined) {
    f50.goal = goal.text;
    f50.met = p50 <= goal.maxUs;
  }
  return [f50, { suite: 'auth', name: `${name} p99`, value: p99, unit: 'us' }];
}

export default async function bench(ctx: BenchContext): Promise<BenchFigure[]> {
  const out: BenchFigure[] = [];
  const logger = silentLogger();

  // API keys: default scrypt parameters, as `mcpworks apikey` writes them.
  const key = generateApiKey('bench');
  const hashStart = performance.now();
  const hash = await hashApiKey(key);
  const scryptMs = performance.now() - hashStart;
  const store = ApiKeyStore.from({
    bench: JSON.stringify({ hash, agent: 'bench', groups: ['g'] }),
  });

  // OIDC with an in-memory issuer: this measures verification, not the network.
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  const fetchJson = async (url: string): Promise<unknown> => {
    if (url === discoveryUrl(ISSUER)) return { issuer: ISSUER, jwks_uri: `${ISSUER}/keys` };
    if (url === `${ISSUER}/keys`) return { keys: [jwk] };
    throw new Error(`unexpected fetch ${url}`);
  };
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({ sub: 'alice', groups: ['sre'] })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(RESOURCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);
  const saToken = await new SignJWT({ sub: 'system:serviceaccount:team:ci' })
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer(CLUSTER_ISSUER)
    .setAudience(RESOURCE)
    .setExpirationTime(now + 3600)
    .sign(privateKey);

  const auth: GatewayAuthenticator = createAuthenticator({
    auth: {
      apiKeys: { secretRef: { name: 'keys' } },
      oidc: { issuer: ISSUER, audiences: [RESOURCE] },
      serviceAccountTokens: { audiences: [RESOURCE] },
    },
    resourceUrl: RESOURCE,
    apiKeys: store,
    fetchJson,
    tokenReviewer: {
      review: async () => ({
        authenticated: true,
        username: 'system:serviceaccount:team:ci',
        groups: ['system:serviceaccounts'],
        audiences: [RESOURCE],
      }),
    },
    logger,
  });

  const keyRequest = { headers: { authorization: `Bearer ${key}` }, url: '/mcp' };
  const jwtRequest = { headers: { authorization: `Bearer ${jwt}` }, url: '/mcp' };
  const saRequest = { headers: { authorization: `Bearer ${saToken}` }, url: '/mcp' };
  for (const req of [keyRequest, jwtRequest, saRequest]) {
    const first = await auth.authenticate(req);
    if (!first.ok) throw new Error(`benchmark setup: authentication failed: ${first.reason}`);
  }

  const sha = await sampleUs(() => createHash('sha256').update(key).digest('base64'));
  const cachedKey = await sampleUs(() => auth.authenticate(keyRequest));
  out.push(
    ...figures(
      'API key, cached',
      cachedKey,
      { name: 'sha256(key)', samples: sha },
      {
        text: '< 100 us',
        maxUs: 100,
      },
    ),
  );

  const bare = await sampleUs(() =>
    jwtVerify(jwt, publicKey, { issuer: ISSUER, audience: RESOURCE, algorithms: ['ES256'] }),
  );
  const oidc = await sampleUs(() => auth.authenticate(jwtRequest));
  out.push(
    ...figures(
      'OIDC ES256 JWT, JWKS cached',
      oidc,
      { name: 'jose jwtVerify', samples: bare },
      {
        text: '< 300 us',
        maxUs: 300,
      },
    ),
  );

  // RS256, the most common IdP algorithm, through a second issuer-less authenticator.
  const rsa = await generateKeyPair('RS256');
  const rsaJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'r1', alg: 'RS256' };
  const rsaAuth = createAuthenticator({
    auth: { oidc: { issuer: ISSUER, audiences: [RESOURCE] } },
    resourceUrl: RESOURCE,
    fetchJson: async (url) =>
      url === discoveryUrl(ISSUER)
        ? { issuer: ISSUER, jwks_uri: `${ISSUER}/keys` }
        : { keys: [rsaJwk] },
    logger,
  });
  const rsaJwt = await new SignJWT({ sub: 'alice' })
    .setProtectedHeader({ alg: 'RS256', kid: 'r1' })
    .setIssuer(ISSUER)
    .setAudience(RESOURCE)
    .setExpirationTime(now + 3600)
    .sign(rsa.privateKey);
  const rsaRequest = { headers: { authorization: `Bearer ${rsaJwt}` }, url: '/mcp' };
  const rsaFirst = await rsaAuth.authenticate(rsaRequest);
  if (!rsaFirst.ok) throw new Error(`benchmark setup: RS256 failed: ${rsaFirst.reason}`);
  const rsaBare = await sampleUs(() =>
    jwtVerify(rsaJwt, rsa.publicKey, { issuer: ISSUER, audience: RESOURCE, algorithms: ['RS256'] }),
  );
  const rsaOidc = await sampleUs(() => rsaAuth.authenticate(rsaRequest));
  out.push(
    ...figures(
      'OIDC RS256 JWT, JWKS cached',
      rsaOidc,
      { name: 'jose jwtVerify', samples: rsaBare },
      {
        text: '< 300 us',
        maxUs: 300,
      },
    ),
  );

  const sa = await sampleUs(() => auth.authenticate(saRequest));
  out.push(
    ...figures('ServiceAccount token, review cached', sa, undefined, {
      text: '< 100 us',
      maxUs: 100,
    }),
  );

  out.push({
    suite: 'auth',
    name: `API key, first use (scrypt N=2^${Math.log2(SCRYPT_DEFAULTS.N)} r=${SCRYPT_DEFAULTS.r} p=${SCRYPT_DEFAULTS.p})`,
    value: Math.round(scryptMs * 10) / 10,
    unit: 'ms',
  });
  ctx.log(
    `cached API key p50 ${r2(percentile(cachedKey, 50))} us, OIDC p50 ${r2(percentile(oidc, 50))} us, ` +
      `SA p50 ${r2(percentile(sa, 50))} us, scrypt ${Math.round(scryptMs)} ms`,
  );
  return out;
}

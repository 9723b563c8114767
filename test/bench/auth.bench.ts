// What authentication costs per request, on the paths a busy gateway takes: a cached API key, an
// OIDC JWT (a repeated token, and a new token with the JWKS cached), a ServiceAccount token with
// its review cached. Baselines are the bare primitive each path cannot avoid (a SHA-256 of the
// key; jose's jwtVerify with the key in hand), measured in the same run.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { SCRYPT_DEFAULTS } from '../../src/gateway/auth/apikeys.ts';
import {
  ApiKeyStore,
  createAuthenticator,
  generateApiKey,
  hashApiKey,
  type AuthRequest,
  type GatewayAuthenticator,
} from '../../src/gateway/auth/index.ts';
import { discoveryUrl } from '../../src/gateway/auth/oidc.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { percentile } from '../harness/stats.ts';
import type { BenchContext, BenchFigure } from './types.ts';

const RESOURCE = 'https://mcp.example.com/mcp/team/tools';
const ISSUER = 'https://idp.example.com';
const CLUSTER_ISSUER = 'https://kubernetes.default.svc';
const ITERATIONS = 5_000;
const WARMUP = 500;
/** Distinct tokens for the "new token" paths (signing them is the slow part of the setup). */
const FRESH_TOKENS = 1_000;

const r2 = (x: number) => Math.round(x * 100) / 100;

/** Microseconds per call of `fn(i)`, after a warm-up. */
async function sampleUs(
  fn: (i: number) => Promise<unknown> | unknown,
  runs = ITERATIONS,
  warmup = WARMUP,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const out = new Array<number>(runs);
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn(warmup + i);
    out[i] = (performance.now() - start) * 1000;
  }
  return out;
}

function figures(
  name: string,
  samples: number[],
  baseline: { name: string; samples: number[] } | undefined,
  goal?: { text: string; maxUs: number },
): BenchFigure[] {
  const p50 = r2(percentile(samples, 50));
  const p99 = r2(percentile(samples, 99));
  const f50: BenchFigure = { suite: 'auth', name: `${name} p50`, value: p50, unit: 'us' };
  if (baseline !== undefined) {
    const base = r2(percentile(baseline.samples, 50));
    f50.baseline = { name: `${baseline.name} p50`, value: base };
    f50.ratio = r2(p50 / base);
  }
  if (goal !== undefined) {
    f50.goal = goal.text;
    f50.met = p50 <= goal.maxUs;
  }
  return [f50, { suite: 'auth', name: `${name} p99`, value: p99, unit: 'us' }];
}

const request = (token: string): AuthRequest => ({
  headers: { authorization: `Bearer ${token}` },
  url: '/mcp',
});

async function mustAuthenticate(auth: GatewayAuthenticator, token: string): Promise<void> {
  const result = await auth.authenticate(request(token));
  if (!result.ok) throw new Error(`benchmark setup: authentication failed: ${result.reason}`);
}

/** An authenticator for one in-memory issuer: this measures verification, not the network. */
async function oidcIssuer(alg: 'ES256' | 'RS256') {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg };
  const fetchJson = async (url: string): Promise<unknown> =>
    url === discoveryUrl(ISSUER) ? { issuer: ISSUER, jwks_uri: `${ISSUER}/keys` } : { keys: [jwk] };
  const now = Math.floor(Date.now() / 1000);
  const mint = (jti: string) =>
    new SignJWT({ sub: 'alice', groups: ['sre'], jti })
      .setProtectedHeader({ alg, kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(RESOURCE)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(privateKey);
  return { publicKey, fetchJson, mint };
}

export default async function bench(ctx: BenchContext): Promise<BenchFigure[]> {
  const out: BenchFigure[] = [];
  const logger = silentLogger();

  // API keys, with the scrypt parameters `mcpworks apikey new` writes.
  const key = generateApiKey('bench');
  const hashStart = performance.now();
  const hash = await hashApiKey(key);
  const scryptMs = performance.now() - hashStart;
  const store = ApiKeyStore.from({
    bench: JSON.stringify({ hash, agent: 'bench', groups: ['g'] }),
  });

  const es = await oidcIssuer('ES256');
  // Any JWT from another issuer goes to the (stub) TokenReview, which does the verifying.
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const saJwt = [
    b64({ alg: 'RS256' }),
    b64({ iss: CLUSTER_ISSUER, exp: Math.floor(Date.now() / 1000) + 3600 }),
    'c2ln',
  ].join('.');
  const auth = createAuthenticator({
    auth: {
      apiKeys: { secretRef: { name: 'keys' } },
      oidc: { issuer: ISSUER, audiences: [RESOURCE] },
      serviceAccountTokens: { audiences: [RESOURCE] },
    },
    resourceUrl: RESOURCE,
    apiKeys: store,
    fetchJson: es.fetchJson,
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

  // API key, after its first use.
  await mustAuthenticate(auth, key);
  const sha = await sampleUs(() => createHash('sha256').update(key).digest('base64'));
  const cachedKey = await sampleUs(() => auth.authenticate(request(key)));
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

  // OIDC: the same token again (what an agent does), and new tokens with the JWKS cached.
  const repeated = await es.mint('repeated');
  await mustAuthenticate(auth, repeated);
  const oidcRepeated = await sampleUs(() => auth.authenticate(request(repeated)));
  out.push(
    ...figures('OIDC JWT, repeated token', oidcRepeated, undefined, {
      text: '< 100 us',
      maxUs: 100,
    }),
  );

  for (const [alg, issuer] of [
    ['ES256', es],
    ['RS256', await oidcIssuer('RS256')],
  ] as const) {
    const verifier =
      alg === 'ES256'
        ? auth
        : createAuthenticator({
            auth: { oidc: { issuer: ISSUER, audiences: [RESOURCE] } },
            resourceUrl: RESOURCE,
            fetchJson: issuer.fetchJson,
            logger,
          });
    const tokens = await Promise.all(
      Array.from({ length: FRESH_TOKENS }, (_, i) => issuer.mint(`${alg}-${i}`)),
    );
    await mustAuthenticate(verifier, await issuer.mint('warm')); // loads discovery and JWKS
    const runs = FRESH_TOKENS / 2;
    const bare = await sampleUs(
      (i) =>
        jwtVerify(tokens[i] as string, issuer.publicKey, {
          issuer: ISSUER,
          audience: RESOURCE,
          algorithms: [alg],
        }),
      runs,
      runs,
    );
    const fresh = await sampleUs(
      (i) => verifier.authenticate(request(tokens[i] as string)),
      runs,
      runs,
    );
    out.push(
      ...figures(
        `OIDC ${alg} JWT, new token, JWKS cached`,
        fresh,
        {
          name: 'jose jwtVerify',
          samples: bare,
        },
        { text: '< 300 us', maxUs: 300 },
      ),
    );
  }

  await mustAuthenticate(auth, saJwt);
  const sa = await sampleUs(() => auth.authenticate(request(saJwt)));
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
    `cached API key p50 ${r2(percentile(cachedKey, 50))} us, repeated JWT p50 ` +
      `${r2(percentile(oidcRepeated, 50))} us, SA p50 ${r2(percentile(sa, 50))} us, ` +
      `scrypt ${Math.round(scryptMs)} ms`,
  );
  return out;
}

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import { silentLogger } from '../../shared/logger.ts';
import {
  ServiceAccountVerifier,
  type TokenReviewer,
  type TokenReviewResult,
} from './serviceaccount.ts';

const AUDIENCE = 'https://mcp.example.com/mcp/team/tools';

function review(overrides: Partial<TokenReviewResult> = {}): TokenReviewResult {
  return {
    authenticated: true,
    username: 'system:serviceaccount:team:ci',
    uid: 'uid-1',
    groups: ['system:serviceaccounts', 'system:serviceaccounts:team', 'system:authenticated'],
    audiences: [AUDIENCE],
    ...overrides,
  };
}

/** A reviewer that answers from a script and records what it was asked. */
function scriptedReviewer(answer: () => TokenReviewResult | Promise<TokenReviewResult>) {
  const calls: { token: string; audiences: readonly string[] }[] = [];
  const reviewer: TokenReviewer = {
    async review(token, audiences) {
      calls.push({ token, audiences });
      return answer();
    },
  };
  return { reviewer, calls };
}

function verifier(reviewer: TokenReviewer, clock = manualClock()) {
  return new ServiceAccountVerifier({
    audiences: [AUDIENCE],
    reviewer,
    clock,
    logger: silentLogger(),
  });
}

describe('ServiceAccountVerifier', () => {
  test('an authenticated review becomes a ServiceAccount principal', async () => {
    const { reviewer, calls } = scriptedReviewer(() => review());
    const result = await verifier(reviewer).verify('token-1');
    assert.ok(result.ok);
    assert.deepEqual(result.principal, {
      kind: 'ServiceAccount',
      name: 'system:serviceaccount:team:ci',
      namespace: 'team',
      serviceAccountName: 'ci',
      groups: ['system:serviceaccounts', 'system:serviceaccounts:team', 'system:authenticated'],
      authMethod: 'service-account',
    });
    assert.deepEqual(calls, [{ token: 'token-1', audiences: [AUDIENCE] }]);
  });

  test('a rejected review is refused', async () => {
    const { reviewer } = scriptedReviewer(() => ({
      authenticated: false,
      error: 'token audiences mismatch',
    }));
    const result = await verifier(reviewer).verify('token-1');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'review-failed');
    assert.equal(result.message, 'the token was not accepted'); // the API server's text stays inside
  });

  test('a review that matched none of our audiences is refused', async () => {
    const { reviewer } = scriptedReviewer(() =>
      review({ audiences: ['https://kubernetes.default.svc'] }),
    );
    const result = await verifier(reviewer).verify('token-1');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'wrong-audience');
  });

  test('a user that is not a ServiceAccount is refused', async () => {
    const { reviewer } = scriptedReviewer(() => review({ username: 'admin' }));
    const result = await verifier(reviewer).verify('token-1');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'review-failed');
  });

  test('an unreachable API server fails closed', async () => {
    const { reviewer } = scriptedReviewer(() => Promise.reject(new Error('ECONNREFUSED')));
    const result = await verifier(reviewer).verify('token-1');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'verifier-unavailable');
  });

  test('a review is reused within its TTL and repeated after it', async () => {
    const clock = manualClock();
    const { reviewer, calls } = scriptedReviewer(() => review());
    const v = verifier(reviewer, clock);
    await v.verify('token-1');
    await v.verify('token-1');
    assert.equal(calls.length, 1);
    clock.advance(10_001);
    await v.verify('token-1');
    assert.equal(calls.length, 2);
  });

  test('an unreachable API server is asked again on the next request', async () => {
    let up = false;
    const { reviewer, calls } = scriptedReviewer(() =>
      up ? review() : Promise.reject(new Error('ECONNREFUSED')),
    );
    const v = verifier(reviewer);
    assert.equal((await v.verify('token-1')).ok, false);
    up = true;
    assert.equal((await v.verify('token-1')).ok, true);
    assert.equal(calls.length, 2);
  });

  test('concurrent requests with one token share one review', async () => {
    const { reviewer, calls } = scriptedReviewer(() => review());
    const v = verifier(reviewer);
    const results = await Promise.all(Array.from({ length: 5 }, () => v.verify('token-1')));
    assert.ok(results.every((r) => r.ok));
    assert.equal(calls.length, 1);
  });

  test('a token whose exp has passed is refused without asking the API server', async () => {
    const { reviewer, calls } = scriptedReviewer(() => review());
    const clock = manualClock(new Date('2026-06-01T12:00:00Z'));
    const expired = unsignedJwt({ exp: Math.floor(clock.now().getTime() / 1000) - 1 });
    const result = await verifier(reviewer, clock).verify(expired);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'expired');
    assert.equal(calls.length, 0);
  });

  test('a review is never cached past the token expiry', async () => {
    const clock = manualClock(new Date('2026-06-01T12:00:00Z'));
    const { reviewer, calls } = scriptedReviewer(() => review());
    const v = verifier(reviewer, clock);
    const token = unsignedJwt({ exp: Math.floor(clock.now().getTime() / 1000) + 2 });
    assert.ok((await v.verify(token)).ok);
    clock.advance(2_000);
    const result = await v.verify(token);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'expired');
    assert.equal(calls.length, 1);
  });

  test('reviews beyond the queue limit fail fast', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { reviewer, calls } = scriptedReviewer(async () => {
      await gate;
      return review();
    });
    const v = new ServiceAccountVerifier({
      audiences: [AUDIENCE],
      reviewer,
      clock: manualClock(),
      logger: silentLogger(),
      maxConcurrentReviews: 1,
      maxQueuedReviews: 1,
    });
    const pending = [v.verify('a'), v.verify('b'), v.verify('c')];
    release();
    const results = await Promise.all(pending);
    assert.deepEqual(
      results.map((r) => (r.ok ? 'ok' : r.reason)),
      ['ok', 'ok', 'verifier-unavailable'],
    );
    assert.equal(calls.length, 2);
  });
});

/** Only the claims matter here: the API server (scripted) does the verifying. */
function unsignedJwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part(claims)}.c2ln`;
}

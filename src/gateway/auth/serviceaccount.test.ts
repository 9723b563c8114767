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
});

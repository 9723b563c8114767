import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { AUTH_FAILURE_REASONS, authFailure } from './types.ts';

const docs = readFileSync(new URL('../../../docs/authentication.md', import.meta.url), 'utf8');

/** `| reason | status | meaning |` rows of the failure-reason table. */
function documentedReasons(): Map<string, number> {
  const rows = new Map<string, number>();
  for (const match of docs.matchAll(/^\|\s*`([a-z-]+)`\s*\|\s*(\d{3})\s*\|/gm)) {
    rows.set(match[1] as string, Number(match[2]));
  }
  return rows;
}

describe('failure reasons', () => {
  test('every reason is documented with its status, and nothing else is', () => {
    const documented = documentedReasons();
    const actual = new Map(AUTH_FAILURE_REASONS.map((r) => [r, authFailure(r).status as number]));
    assert.deepEqual([...documented.entries()].sort(), [...actual.entries()].sort());
  });

  test('client messages never vary with the input', () => {
    for (const reason of AUTH_FAILURE_REASONS) {
      assert.equal(authFailure(reason).message, authFailure(reason, { method: 'oidc' }).message);
    }
  });

  test('a 401 for a refused credential carries invalid_token; a bare 401 carries no error', () => {
    assert.equal(authFailure('expired').error, 'invalid_token');
    assert.equal(authFailure('missing-credentials').error, undefined);
    assert.equal(authFailure('token-in-query').error, 'invalid_request');
    assert.equal(authFailure('insufficient-scope').error, 'insufficient_scope');
  });
});

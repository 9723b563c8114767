import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { extractCredential, hasCredentialInQuery, MAX_TOKEN_LENGTH } from './credentials.ts';

const withAuth = (value: string | string[], url?: string) => ({
  headers: { authorization: value },
  ...(url === undefined ? {} : { url }),
});

function rejectedReason(result: ReturnType<typeof extractCredential>): string | undefined {
  return result.kind === 'rejected' ? result.failure.reason : undefined;
}

describe('extractCredential', () => {
  test('no Authorization header is no credential', () => {
    assert.deepEqual(extractCredential({ headers: {} }), { kind: 'none' });
  });

  test('a Bearer token is extracted, the scheme case-insensitively', () => {
    assert.deepEqual(extractCredential(withAuth('bearer abc.def-_~+/=')), {
      kind: 'bearer',
      token: 'abc.def-_~+/=',
    });
  });

  test('header names are matched case-insensitively', () => {
    assert.equal(extractCredential({ headers: { Authorization: 'Bearer x' } }).kind, 'bearer');
  });

  test('another scheme is unsupported (401), not malformed', () => {
    const result = extractCredential(withAuth('Basic dXNlcjpwYXNz'));
    assert.equal(rejectedReason(result), 'unsupported-scheme');
    assert.equal(result.kind === 'rejected' && result.failure.status, 401);
  });

  test('an X-API-Key header alone is refused with a pointer to the Bearer scheme', () => {
    const result = extractCredential({ headers: { 'x-api-key': 'mcpw_a_b' } });
    assert.equal(rejectedReason(result), 'unsupported-scheme');
  });

  test('an empty or syntactically invalid Bearer token is a malformed request (400)', () => {
    for (const value of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer a"b', 'Bearer =abc']) {
      const result = extractCredential(withAuth(value));
      assert.equal(rejectedReason(result), 'malformed-request', value);
      assert.equal(result.kind === 'rejected' && result.failure.status, 400);
    }
  });

  test('two Authorization headers are a malformed request', () => {
    assert.equal(
      rejectedReason(extractCredential(withAuth(['Bearer a', 'Bearer b']))),
      'malformed-request',
    );
  });

  test('an oversized token is a malformed request', () => {
    const big = `Bearer ${'a'.repeat(MAX_TOKEN_LENGTH + 100)}`;
    assert.equal(rejectedReason(extractCredential(withAuth(big))), 'malformed-request');
  });

  test('a token in the query string is refused even beside a valid header', () => {
    const result = extractCredential(withAuth('Bearer abc', '/mcp?access_token=abc'));
    assert.equal(rejectedReason(result), 'token-in-query');
    assert.equal(result.kind === 'rejected' && result.failure.status, 400);
  });
});

describe('hasCredentialInQuery', () => {
  test('credential parameter names are detected in any case', () => {
    for (const q of ['access_token=x', 'API_KEY=x', 'apikey=x', 'id_token=x', 'token=x']) {
      assert.equal(hasCredentialInQuery(`/mcp?${q}`), true, q);
    }
  });

  test('an API key under any parameter name is detected', () => {
    assert.equal(hasCredentialInQuery('/mcp?k=mcpw_ci_secret'), true);
  });

  test('ordinary queries pass', () => {
    assert.equal(hasCredentialInQuery('/mcp?session=1&x=y'), false);
    assert.equal(hasCredentialInQuery('/mcp'), false);
    assert.equal(hasCredentialInQuery(undefined), false);
  });
});

// The per-server key state the authenticator factory keeps across snapshots. The same behaviour
// through the real `mcpworks serve` endpoint is in test/e2e/serve-flood.test.ts.
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import type { McpServer } from '../api/v1alpha1/mcpserver.ts';
import { systemClock } from '../shared/clock.ts';
import { silentLogger } from '../shared/logger.ts';
import { apiKeyCredentialFields, generateApiKey } from './auth/apikeys.ts';
import type { GatewaySnapshot } from './source/types.ts';
import { snapshotAuthenticatorFactory } from './wiring.ts';

const FAST = { N: 1024 };

function snapshot(revision: number, apiKeySecretData: Record<string, string>): GatewaySnapshot {
  const server = {
    metadata: { namespace: 'team', name: 'tools' },
    spec: { auth: { apiKeys: { secretRef: { name: 'keys' } } } },
  } as unknown as McpServer;
  return {
    revision,
    server,
    tools: [],
    policySet: {} as GatewaySnapshot['policySet'],
    apiKeySecretData,
    namespaceLabels: {},
  };
}

async function key(id: string): Promise<{ key: string; json: string }> {
  const k = generateApiKey(id);
  return {
    key: k,
    json: JSON.stringify({ ...(await apiKeyCredentialFields(k, FAST)), agent: `agent-${id}` }),
  };
}

const bearer = (token: string) => ({
  headers: { authorization: `Bearer ${token}` },
  url: '/mcp/team/tools',
});

function factory() {
  return snapshotAuthenticatorFactory({
    resourceUrl: () => 'http://127.0.0.1/mcp/team/tools',
    clock: systemClock,
    logger: silentLogger(),
  });
}

describe('snapshotAuthenticatorFactory', () => {
  test('a key verified under one snapshot is not hashed again under the next', async () => {
    const [a, b] = await Promise.all([key('a'), key('b')]);
    const authFor = factory();
    assert.ok((await authFor(snapshot(1, { a: a.json })).authenticate(bearer(a.key))).ok);
    const next = authFor(snapshot(2, { a: a.json, b: b.json }));
    const scrypt = mock.method(crypto, 'scrypt');
    try {
      assert.ok((await next.authenticate(bearer(a.key))).ok);
      assert.equal(scrypt.mock.callCount(), 0);
      assert.ok((await next.authenticate(bearer(b.key))).ok, 'the added key works');
      assert.equal(scrypt.mock.callCount(), 1);
    } finally {
      scrypt.mock.restore();
    }
  });

  test('an authenticator rebuilt for an older snapshot does not bring back a removed key', async () => {
    const [a, b] = await Promise.all([key('a'), key('b')]);
    const authFor = factory();
    const first = snapshot(1, { a: a.json, b: b.json });
    assert.ok((await authFor(first).authenticate(bearer(b.key))).ok);
    const removed = await authFor(snapshot(2, { a: a.json })).authenticate(bearer(b.key));
    assert.equal(!removed.ok && removed.reason, 'revoked');
    const stale = await authFor(first).authenticate(bearer(b.key));
    assert.equal(!stale.ok && stale.reason, 'revoked');
    assert.ok((await authFor(first).authenticate(bearer(a.key))).ok);
  });

  test('servers do not share keys', async () => {
    const a = await key('a');
    const authFor = factory();
    assert.ok((await authFor(snapshot(1, { a: a.json })).authenticate(bearer(a.key))).ok);
    const other = snapshot(2, {});
    (other.server.metadata as { name: string }).name = 'other';
    const result = await authFor(other).authenticate(bearer(a.key));
    assert.equal(!result.ok && result.reason, 'unknown-key');
  });
});

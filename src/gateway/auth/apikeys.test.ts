import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import { silentLogger } from '../../shared/logger.ts';
import {
  ApiKeyStore,
  ApiKeyVerifier,
  apiKeyEntriesFromSecret,
  apiKeyId,
  generateApiKey,
  hashApiKey,
  parseScryptHash,
} from './apikeys.ts';

/** The cheapest parameters the store accepts, so tests stay fast. */
const FAST = { N: 1024, r: 8, p: 1 };

async function entry(
  id: string,
  fields: { agent?: string; groups?: string[]; expires?: string } = {},
): Promise<{ key: string; json: string }> {
  const key = generateApiKey(id);
  const hash = await hashApiKey(key, FAST);
  const json = JSON.stringify({ hash, agent: fields.agent ?? `agent-${id}`, ...fields });
  return { key, json };
}

function verifierFor(store: ApiKeyStore, clock = manualClock()) {
  return new ApiKeyVerifier({ store, clock, logger: silentLogger() });
}

describe('API key format', () => {
  test('a generated key carries its id', () => {
    assert.equal(apiKeyId(generateApiKey('ci-bot')), 'ci-bot');
  });

  test('keys with a bad shape have no id', () => {
    for (const bad of [
      'mcpw_',
      'mcpw_id',
      'mcpw_Bad_' + 'a'.repeat(43),
      'xx_id_' + 'a'.repeat(43),
      'mcpw_id_short',
    ]) {
      assert.equal(apiKeyId(bad), undefined, bad);
    }
  });

  test('hashApiKey output parses with the parameters it was given', async () => {
    const parsed = parseScryptHash(await hashApiKey('mcpw_a_' + 'x'.repeat(43), FAST));
    assert.deepEqual(
      [parsed.N, parsed.r, parsed.p, parsed.salt.length, parsed.hash.length],
      [1024, 8, 1, 16, 32],
    );
  });

  test('hash parameters that would exhaust memory are refused', () => {
    const salt = Buffer.alloc(16).toString('base64');
    const hash = Buffer.alloc(32).toString('base64');
    assert.throws(() => parseScryptHash(`scrypt$${2 ** 24}$8$1$${salt}$${hash}`), /power of two/);
    assert.throws(() => parseScryptHash(`scrypt$${2 ** 20}$32$1$${salt}$${hash}`), /memory/);
    assert.throws(() => parseScryptHash(`scrypt$1000$8$1$${salt}$${hash}`), /power of two/);
    assert.throws(() => parseScryptHash(`bcrypt$1024$8$1$${salt}$${hash}`), /form/);
  });
});

describe('ApiKeyStore', () => {
  test('invalid entries are reported and not loaded; valid ones are', async () => {
    const good = await entry('good');
    const result = new ApiKeyStore().replace({
      good: good.json,
      'not-json': '{',
      'no-agent': JSON.stringify({ hash: JSON.parse(good.json).hash }),
      Upper: good.json,
      'weak-hash': JSON.stringify({ hash: 'scrypt$2$1$1$AA==$AA==', agent: 'x' }),
      'bad-expiry': JSON.stringify({
        hash: JSON.parse(good.json).hash,
        agent: 'x',
        expires: 'tomorrow',
      }),
    });
    assert.equal(result.loaded, 1);
    assert.deepEqual(result.rejected.map((r) => r.id).sort(), [
      'Upper',
      'bad-expiry',
      'no-agent',
      'not-json',
      'weak-hash',
    ]);
  });

  test('entries come from a Secret: base64 data, plain stringData, optionally one key', () => {
    const secret = {
      data: {
        a: Buffer.from('{"x":1}').toString('base64'),
        b: Buffer.from('B').toString('base64'),
      },
      stringData: { c: 'C' },
    };
    assert.deepEqual(apiKeyEntriesFromSecret(secret), { a: '{"x":1}', b: 'B', c: 'C' });
    assert.deepEqual(apiKeyEntriesFromSecret(secret, 'b'), { b: 'B' });
    assert.deepEqual(apiKeyEntriesFromSecret(secret, 'missing'), {});
  });
});

describe('ApiKeyVerifier', () => {
  test('a valid key authenticates as its agent with its groups', async () => {
    const k = await entry('ci', { agent: 'ci-bot', groups: ['builders'] });
    const result = await verifierFor(ApiKeyStore.from({ ci: k.json })).verify(k.key);
    assert.ok(result.ok);
    assert.deepEqual(result.principal, {
      kind: 'Agent',
      name: 'ci-bot',
      groups: ['builders'],
      authMethod: 'api-key',
    });
    assert.equal(result.credential.id, 'ci');
  });

  test('a key whose id is unknown is refused', async () => {
    const k = await entry('ci');
    const result = await verifierFor(ApiKeyStore.from({ ci: k.json })).verify(
      generateApiKey('other'),
    );
    assert.ok(!result.ok);
    assert.equal(result.reason, 'unknown-key');
    assert.equal(result.status, 401);
  });

  test('a wrong secret for a known id is refused', async () => {
    const k = await entry('ci');
    const result = await verifierFor(ApiKeyStore.from({ ci: k.json })).verify(generateApiKey('ci'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'unknown-key');
  });

  test('a malformed key is refused without hashing', async () => {
    const result = await verifierFor(new ApiKeyStore()).verify('mcpw_nope');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'malformed');
  });

  test('the digest comparison is constant-time', async () => {
    const k = await entry('ci');
    const spy = mock.method(crypto, 'timingSafeEqual');
    try {
      await verifierFor(ApiKeyStore.from({ ci: k.json })).verify(k.key);
      assert.equal(spy.mock.callCount(), 1);
      const [a, b] = spy.mock.calls[0]?.arguments ?? [];
      assert.equal((a as Buffer).length, 32);
      assert.equal((b as Buffer).length, 32);
    } finally {
      spy.mock.restore();
    }
  });

  test('a key removed from the store stops working at once, even when cached', async () => {
    const k = await entry('ci');
    const other = await entry('other');
    const store = ApiKeyStore.from({ ci: k.json, other: other.json });
    const verifier = verifierFor(store);
    assert.ok((await verifier.verify(k.key)).ok);
    store.replace({ other: other.json });
    const result = await verifier.verify(k.key);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'revoked');
  });

  test("a new store seeded with an earlier store's revoked ids still says revoked", async () => {
    const k = await entry('ci');
    const other = await entry('other');
    const history = ApiKeyStore.from({ ci: k.json, other: other.json });
    history.replace({ other: other.json });
    assert.deepEqual(history.revokedIds(), ['ci']);
    const fresh = ApiKeyStore.from({ other: other.json }, history.revokedIds());
    const result = await verifierFor(fresh).verify(k.key);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'revoked');
    const reissued = ApiKeyStore.from({ ci: k.json }, history.revokedIds());
    assert.equal(reissued.wasRevoked('ci'), false, 'an id that is back is not revoked');
  });

  test('a key re-issued under the same id invalidates the old secret', async () => {
    const old = await entry('ci');
    const store = ApiKeyStore.from({ ci: old.json });
    const verifier = verifierFor(store);
    assert.ok((await verifier.verify(old.key)).ok);
    const fresh = await entry('ci');
    store.replace({ ci: fresh.json });
    assert.equal((await verifier.verify(old.key)).ok, false);
    assert.equal((await verifier.verify(fresh.key)).ok, true);
  });

  test('an expired key is refused', async () => {
    const clock = manualClock(new Date('2026-06-01T00:00:00Z'));
    const k = await entry('ci', { expires: '2026-05-31T23:59:59Z' });
    const result = await verifierFor(ApiKeyStore.from({ ci: k.json }), clock).verify(k.key);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'expired');
  });

  test('expiry is checked on cached keys too', async () => {
    const clock = manualClock(new Date('2026-06-01T00:00:00Z'));
    const k = await entry('ci', { expires: '2026-06-01T00:01:00Z' });
    const verifier = verifierFor(ApiKeyStore.from({ ci: k.json }), clock);
    assert.ok((await verifier.verify(k.key)).ok);
    clock.advance(60_000);
    const result = await verifier.verify(k.key);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'expired');
  });

  test('a verified key is not hashed again', async () => {
    const k = await entry('ci');
    const verifier = verifierFor(ApiKeyStore.from({ ci: k.json }));
    await verifier.verify(k.key);
    const spy = mock.method(crypto, 'scrypt');
    try {
      assert.ok((await verifier.verify(k.key)).ok);
      assert.equal(spy.mock.callCount(), 0);
    } finally {
      spy.mock.restore();
    }
  });

  test('concurrent first uses of one key share one hash computation', async () => {
    const k = await entry('ci');
    const verifier = verifierFor(ApiKeyStore.from({ ci: k.json }));
    const spy = mock.method(crypto, 'scrypt');
    try {
      const results = await Promise.all(Array.from({ length: 5 }, () => verifier.verify(k.key)));
      assert.ok(results.every((r) => r.ok));
      assert.equal(spy.mock.callCount(), 1);
    } finally {
      spy.mock.restore();
    }
  });

  test('a key added by replace works at once', async () => {
    const store = new ApiKeyStore();
    const verifier = verifierFor(store);
    const k = await entry('late');
    assert.equal((await verifier.verify(k.key)).ok, false);
    store.replace({ late: k.json });
    assert.equal((await verifier.verify(k.key)).ok, true);
  });

  test('hash computations beyond the queue limit fail fast instead of piling up', async () => {
    const k = await entry('ci');
    const verifier = new ApiKeyVerifier({
      store: ApiKeyStore.from({ ci: k.json }),
      clock: manualClock(),
      logger: silentLogger(),
      maxConcurrentHashes: 1,
      maxQueuedHashes: 1,
    });
    const results = await Promise.all(
      Array.from({ length: 3 }, () => verifier.verify(generateApiKey('ci'))),
    );
    assert.deepEqual(
      results.map((r) => !r.ok && r.reason),
      ['unknown-key', 'unknown-key', 'verifier-unavailable'],
    );
  });
});

import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import { createLogger, silentLogger } from '../../shared/logger.ts';
import {
  ApiKeyStore,
  ApiKeyVerifier,
  apiKeyCredentialFields,
  apiKeyEntriesFromSecret,
  apiKeyId,
  apiKeyTag,
  generateApiKey,
  hashApiKey,
  parseScryptHash,
} from './apikeys.ts';

/** The cheapest parameters the store accepts, so tests stay fast. */
const FAST = { N: 1024, r: 8, p: 1 };

/** An entry as older versions wrote it: a scrypt hash and no tag. */
async function entry(
  id: string,
  fields: { agent?: string; groups?: string[]; expires?: string } = {},
): Promise<{ key: string; json: string }> {
  const key = generateApiKey(id);
  const hash = await hashApiKey(key, FAST);
  const json = JSON.stringify({ hash, agent: fields.agent ?? `agent-${id}`, ...fields });
  return { key, json };
}

/** An entry as `mcpworks apikey new` writes it: hash and tag. */
async function taggedEntry(
  id: string,
  fields: { agent?: string; groups?: string[] } = {},
): Promise<{ key: string; json: string }> {
  const key = generateApiKey(id);
  const json = JSON.stringify({
    ...(await apiKeyCredentialFields(key, FAST)),
    agent: fields.agent ?? `agent-${id}`,
    ...fields,
  });
  return { key, json };
}

/** Runs `fn` counting calls of crypto.scrypt (slow) and crypto.hash (the tag check). */
async function counting<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; scrypt: number; fastHash: number }> {
  const scrypt = mock.method(crypto, 'scrypt');
  const fastHash = mock.method(crypto, 'hash');
  try {
    const value = await fn();
    return { value, scrypt: scrypt.mock.callCount(), fastHash: fastHash.mock.callCount() };
  } finally {
    scrypt.mock.restore();
    fastHash.mock.restore();
  }
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

  test('the tag and digest comparisons are constant-time', async () => {
    const k = await taggedEntry('ci');
    const spy = mock.method(crypto, 'timingSafeEqual');
    try {
      assert.ok((await verifierFor(ApiKeyStore.from({ ci: k.json })).verify(k.key)).ok);
      const lengths = spy.mock.calls.map((c) => c.arguments.map((b) => (b as Buffer).length));
      assert.deepEqual(lengths, [
        [2, 2],
        [32, 32],
      ]);
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

/** A key for `id` whose tag does not match the entry's (a random one matches 1 in 65 536). */
function wrongKeyFor(id: string, json: string): string {
  const { hash, tag } = JSON.parse(json) as { hash: string; tag: string };
  for (;;) {
    const key = generateApiKey(id);
    if (apiKeyTag(key, hash) !== tag) return key;
  }
}

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: () => string[] } {
  let text = '';
  const logger = createLogger({
    level: 'warn',
    destination: new Writable({
      write(chunk, _enc, done) {
        text += String(chunk);
        done();
      },
    }),
  });
  return { logger, lines: () => text.split('\n').filter((l) => l !== '') };
}

describe('API key tags: wrong secrets refused by one fast hash', () => {
  test('apiKeyCredentialFields writes a 4-hex-digit tag the store loads', async () => {
    const key = generateApiKey('ci');
    const { hash, tag } = await apiKeyCredentialFields(key, FAST);
    assert.match(tag, /^[0-9a-f]{4}$/);
    assert.equal(apiKeyTag(key, hash), tag, 'the tag is a function of the key and the salt');
    const store = ApiKeyStore.from({ ci: JSON.stringify({ hash, tag, agent: 'a' }) });
    assert.equal(store.lookup('ci')?.tag?.toString('hex'), tag);
  });

  test('an entry with a malformed tag is rejected at load', async () => {
    const hash = await hashApiKey(generateApiKey('ci'), FAST);
    for (const tag of ['ABCD', '123', '12345', 'zzzz']) {
      const result = new ApiKeyStore().replace({ ci: JSON.stringify({ hash, tag, agent: 'a' }) });
      assert.equal(result.loaded, 0, tag);
      assert.match(result.rejected[0]?.problem ?? '', /tag must be 4 lowercase hex digits/);
    }
  });

  test('a valid tagged key takes one fast hash and one scrypt', async () => {
    const k = await taggedEntry('ci');
    const verifier = verifierFor(ApiKeyStore.from({ ci: k.json }));
    const { value, scrypt, fastHash } = await counting(() => verifier.verify(k.key));
    assert.ok(value.ok);
    assert.deepEqual({ scrypt, fastHash }, { scrypt: 1, fastHash: 1 });
  });

  test('a wrong secret whose tag does not match is refused without scrypt', async () => {
    const k = await taggedEntry('ci');
    const verifier = verifierFor(ApiKeyStore.from({ ci: k.json }));
    const wrong = wrongKeyFor('ci', k.json);
    const { value, scrypt, fastHash } = await counting(() => verifier.verify(wrong));
    assert.ok(!value.ok);
    assert.equal(value.reason, 'unknown-key');
    assert.deepEqual({ scrypt, fastHash }, { scrypt: 0, fastHash: 1 });
  });

  test('an entry whose tag is not its key’s refuses the key, without scrypt (fail closed)', async () => {
    const k = await taggedEntry('ci');
    const doc = JSON.parse(k.json) as { tag: string };
    doc.tag = ((parseInt(doc.tag, 16) + 1) % 0x10000).toString(16).padStart(4, '0');
    const verifier = verifierFor(ApiKeyStore.from({ ci: JSON.stringify(doc) }));
    const { value, scrypt } = await counting(() => verifier.verify(k.key));
    assert.ok(!value.ok);
    assert.equal(value.reason, 'unknown-key');
    assert.equal(scrypt, 0);
  });

  test('an unknown id does the same work as a wrong tag, with the same answer', async () => {
    const k = await taggedEntry('ci');
    const verifier = verifierFor(ApiKeyStore.from({ ci: k.json }));
    const [nobody, wrong] = [generateApiKey('nobody'), wrongKeyFor('ci', k.json)];
    const unknown = await counting(() => verifier.verify(nobody));
    const wrongTag = await counting(() => verifier.verify(wrong));
    assert.deepEqual(unknown, wrongTag);
    assert.deepEqual(
      {
        reason: !unknown.value.ok && unknown.value.reason,
        scrypt: unknown.scrypt,
        fastHash: unknown.fastHash,
      },
      { reason: 'unknown-key', scrypt: 0, fastHash: 1 },
    );
  });

  test('an entry without a tag still works, through scrypt alone, and is named once in the log', async () => {
    const old = await entry('old');
    const other = await taggedEntry('other');
    const { logger, lines } = capturingLogger();
    const store = ApiKeyStore.from({ old: old.json, other: other.json });
    const verifier = new ApiKeyVerifier({ store, clock: manualClock(), logger });
    const wrong = await counting(() => verifier.verify(generateApiKey('old')));
    assert.ok(!wrong.value.ok);
    assert.equal(wrong.value.reason, 'unknown-key');
    assert.equal(wrong.scrypt, 1, 'without a tag, a wrong secret costs a scrypt');
    assert.deepEqual(
      wrong.value,
      (await verifier.verify(generateApiKey('nobody'))) as typeof wrong.value,
      'a wrong secret and an unknown id get the same answer',
    );
    assert.ok((await verifier.verify(old.key)).ok);
    store.replace({ old: old.json, other: other.json, more: (await entry('more')).json });
    const warnings = lines().map((l) => JSON.parse(l) as { keyId: string; msg: string });
    assert.deepEqual(
      warnings.map((w) => w.keyId),
      ['old', 'more'],
    );
    assert.match(warnings[0]?.msg ?? '', /no tag.*re-issue it/);
  });

  test('under a flood of wrong secrets for its id, a valid key’s first use succeeds', async () => {
    const k = await taggedEntry('ci');
    const verifier = verifierFor(ApiKeyStore.from({ ci: k.json }));
    const flood = Array.from({ length: 500 }, () => verifier.verify(generateApiKey('ci')));
    const valid = verifier.verify(k.key);
    const floodResults = await Promise.all(flood);
    assert.ok((await valid).ok);
    assert.deepEqual(new Set(floodResults.map((r) => !r.ok && r.reason)), new Set(['unknown-key']));
  });

  test('a flood against one untagged id cannot take every hash slot from other ids', async () => {
    const old = await entry('old');
    const other = await entry('other');
    const verifier = new ApiKeyVerifier({
      store: ApiKeyStore.from({ old: old.json, other: other.json }),
      clock: manualClock(),
      logger: silentLogger(),
      maxConcurrentHashes: 1,
      maxQueuedHashes: 64,
      maxHashesPerKey: 2,
    });
    const flood = Array.from({ length: 20 }, () => verifier.verify(generateApiKey('old')));
    const valid = verifier.verify(other.key);
    const reasons = (await Promise.all(flood)).map((r) => !r.ok && r.reason);
    assert.ok((await valid).ok);
    assert.equal(reasons.filter((r) => r === 'unknown-key').length, 2);
    assert.equal(reasons.filter((r) => r === 'verifier-unavailable').length, 18);
  });
});

describe('ApiKeyVerifier across Secret changes', () => {
  test('a key whose entry did not change stays verified: no scrypt again', async () => {
    const k = await taggedEntry('ci');
    const store = ApiKeyStore.from({ ci: k.json });
    const verifier = verifierFor(store);
    assert.ok((await verifier.verify(k.key)).ok);
    const added = await taggedEntry('new');
    store.replace({ ci: k.json, new: added.json });
    const again = await counting(() => verifier.verify(k.key));
    assert.ok(again.value.ok);
    assert.equal(again.scrypt, 0);
    const first = await counting(() => verifier.verify(added.key));
    assert.ok(first.value.ok, 'a key added by the change works at once');
    assert.equal(first.scrypt, 1);
  });

  test('an edited entry is verified again and authenticates as it now says', async () => {
    const k = await taggedEntry('ci', { agent: 'before' });
    const store = ApiKeyStore.from({ ci: k.json });
    const verifier = verifierFor(store);
    assert.ok((await verifier.verify(k.key)).ok);
    store.replace({ ci: JSON.stringify({ ...JSON.parse(k.json), agent: 'after' }) });
    const again = await counting(() => verifier.verify(k.key));
    assert.ok(again.value.ok);
    assert.equal(again.value.principal.name, 'after');
    assert.equal(again.scrypt, 1);
  });

  test('a hash that is running when an unrelated entry changes still counts', async () => {
    const k = await taggedEntry('ci');
    const other = await taggedEntry('other');
    const store = ApiKeyStore.from({ ci: k.json });
    const verifier = verifierFor(store);
    const { value, scrypt } = await counting(async () => {
      const pending = verifier.verify(k.key);
      store.replace({ ci: k.json, other: other.json });
      return pending;
    });
    assert.ok(value.ok);
    assert.equal(scrypt, 1);
  });

  test('a key removed while its hash runs is refused as revoked', async () => {
    const k = await taggedEntry('ci');
    const store = ApiKeyStore.from({ ci: k.json });
    const verifier = verifierFor(store);
    const pending = verifier.verify(k.key);
    store.replace({});
    const result = await pending;
    assert.ok(!result.ok);
    assert.equal(result.reason, 'revoked');
  });

  test('a secret remembered as wrong is forgotten when its entry changes', async () => {
    const store = ApiKeyStore.from({ ci: (await entry('ci')).json });
    const verifier = verifierFor(store);
    const reissued = generateApiKey('ci');
    assert.equal((await verifier.verify(reissued)).ok, false);
    store.replace({ ci: JSON.stringify({ hash: await hashApiKey(reissued, FAST), agent: 'a' }) });
    assert.equal((await verifier.verify(reissued)).ok, true);
  });
});

import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import { isMcpworksError } from '../../shared/errors.ts';
import { computeRecordHash, type DecisionRecord } from './record.ts';
import { createDecisionRecorder, decisionLine, jsonLineDecisionSink } from './recorder.ts';
import {
  createDecisionSigner,
  generateSigningKey,
  keyIdOf,
  parsePublicKeys,
  parseSigningKey,
  signingInput,
  verifyRecordSignature,
} from './signing.ts';
import { entry, fabricatedLines } from './testing/builders.ts';
import { verifyChain } from './verify.ts';

const keyPair = () => generateKeyPairSync('ed25519');
const trusted = keyPair();
const other = keyPair();

/** `count` records of one writer and the lines its sink wrote. */
function signedLog(
  count: number,
  signingKey: KeyObject | null = trusted.privateKey,
  writerId = 'gw-1',
): { records: DecisionRecord[]; lines: string[] } {
  const lines: string[] = [];
  const recorder = createDecisionRecorder({
    sinks: [jsonLineDecisionSink({ write: (line: string) => lines.push(line.trimEnd()) })],
    clock: manualClock(),
    writerId,
    ...(signingKey === null ? {} : { signingKey }),
  });
  const records = Array.from({ length: count }, (_, i) =>
    recorder.record(entry({ durationMs: i })),
  );
  return { records, lines };
}

describe('signed decision records', () => {
  test('each record carries keyId and a signature over its signing input, in the canonical line', () => {
    const { records, lines } = signedLog(3);
    const keyId = keyIdOf(trusted.publicKey);
    records.forEach((record, i) => {
      assert.equal(record.keyId, keyId);
      assert.equal(record.hash, computeRecordHash(record), 'keyId is covered by the hash');
      assert.ok(
        verifyRecordSignature(trusted.publicKey, { ...record, keyId }, record.signature as string),
        `record ${i} verifies`,
      );
      assert.equal(lines[i], decisionLine(record), 'the sink wrote the canonical line');
      assert.match(
        lines[i] as string,
        /,"hash":"[0-9a-f]{64}","signature":"[A-Za-z0-9_-]{86}","msg":"decision"}$/,
      );
    });
  });

  test('without a key records are as before: no keyId, no signature', () => {
    const { records, lines } = signedLog(2, null);
    for (const record of records) {
      assert.equal('keyId' in record, false);
      assert.equal('signature' in record, false);
    }
    assert.doesNotMatch(lines.join('\n'), /keyId|signature/);
  });

  test('the signing input binds writer, seq and hash under a fixed context', () => {
    assert.equal(
      signingInput({ hash: 'h', keyId: 'k', seq: 7, writerId: 'w' }).toString('utf8'),
      'mcpworks.io decision signature v1\n{"hash":"h","keyId":"k","seq":7,"writerId":"w"}',
    );
  });

  test('the recorder refuses a key that is not an Ed25519 private key when it is created', () => {
    for (const signingKey of [
      trusted.publicKey,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    ]) {
      assert.throws(
        () =>
          createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw', signingKey }),
        (error: unknown) => isMcpworksError(error) && /Ed25519 private key/.test(error.message),
      );
    }
  });

  test('keyId: the same for the private and the public key, different for another key', () => {
    assert.match(keyIdOf(trusted.publicKey), /^[0-9a-f]{16}$/);
    assert.equal(keyIdOf(trusted.privateKey), keyIdOf(trusted.publicKey));
    assert.notEqual(keyIdOf(other.publicKey), keyIdOf(trusted.publicKey));
  });
});

describe('verifyChain with public keys', () => {
  test('a signed log verifies, and the report names the keys that signed it', () => {
    const report = verifyChain(signedLog(4).lines, { publicKeys: [trusted.publicKey] });
    assert.equal(report.ok, true, report.break?.message);
    assert.deepEqual(report.identity, {
      checked: true,
      signedRecords: 4,
      keyIds: [keyIdOf(trusted.publicKey)],
    });
    assert.equal(report.notes.length, 0);
  });

  test('without public keys a signed log verifies as before, with a note that identity was not checked', () => {
    const report = verifyChain(signedLog(2).lines);
    assert.equal(report.ok, true);
    assert.equal(report.identity.checked, false);
    assert.match(
      report.notes.at(-1) ?? '',
      /writer identity was not checked .*2 of 2 records carry a signature/,
    );
  });

  test('a fabricated writer chain with valid hashes and no signature passes without keys but fails with them', () => {
    const genuine = signedLog(3).lines;
    const forged = [...genuine, ...fabricatedLines(2, { writerId: 'gw-forged' })];
    assert.equal(verifyChain(forged).ok, true, 'the hash chains alone cannot tell');
    const report = verifyChain(forged, { publicKeys: [trusted.publicKey] });
    assert.equal(report.ok, false);
    assert.equal(report.break?.problem, 'unsigned');
    assert.equal(report.break?.line, 4);
    assert.equal(report.break?.writerId, 'gw-forged');
    assert.match(report.break?.message ?? '', /line 4 \(writer gw-forged, seq 0\) is not signed/);
  });

  test('unsigned records appended to a genuine writer chain fail at the first of them', () => {
    const { records, lines } = signedLog(3);
    const forged = [...lines, ...fabricatedLines(2, { after: records.at(-1) as DecisionRecord })];
    assert.equal(verifyChain(forged).ok, true);
    const report = verifyChain(forged, { publicKeys: [trusted.publicKey] });
    assert.equal(report.break?.problem, 'unsigned');
    assert.equal(report.break?.line, 4);
    assert.equal(report.break?.seq, 3);
  });

  test('a chain signed by another key under the trusted keyId is a bad signature', () => {
    const forged = fabricatedLines(
      2,
      { writerId: 'gw-forged' },
      { keyId: keyIdOf(trusted.publicKey), signer: createDecisionSigner(other.privateKey) },
    );
    const report = verifyChain(forged, { publicKeys: [trusted.publicKey] });
    assert.equal(report.break?.problem, 'bad-signature');
    assert.equal(report.break?.line, 1);
  });

  test('a log signed by a key that was not given is an unknown key', () => {
    const report = verifyChain(signedLog(2, other.privateKey).lines, {
      publicKeys: [trusted.publicKey],
    });
    assert.equal(report.break?.problem, 'unknown-key');
    assert.equal(report.break?.line, 1);
    assert.match(
      report.break?.message ?? '',
      new RegExp(`signed by key ${keyIdOf(other.publicKey)}`),
    );
  });

  test('a signature moved from another record does not verify', () => {
    const { records } = signedLog(3);
    const moved = records.map((r) => ({ ...r }));
    (moved[2] as DecisionRecord).signature = (records[1] as DecisionRecord).signature as string;
    const report = verifyChain(
      moved.map((r) => decisionLine(r)),
      {
        publicKeys: [trusted.publicKey],
      },
    );
    assert.equal(report.break?.problem, 'bad-signature');
    assert.equal(report.break?.line, 3);
  });

  test('a signature taken from the same seq of another writer signed by the same key does not verify', () => {
    const a = signedLog(2, trusted.privateKey, 'gw-a').records;
    const b = signedLog(2, trusted.privateKey, 'gw-b').records;
    const stolen = { ...(b[1] as DecisionRecord), signature: (a[1] as DecisionRecord).signature };
    const report = verifyChain([decisionLine(b[0] as DecisionRecord), decisionLine(stolen)], {
      publicKeys: [trusted.publicKey],
    });
    assert.equal(report.break?.problem, 'bad-signature');
    assert.equal(report.break?.line, 2);
  });

  test('stripping only the signature leaves a malformed record (keyId alone), with or without keys', () => {
    const { records } = signedLog(2);
    const { signature: _signature, ...stripped } = records[1] as DecisionRecord;
    const lines = [decisionLine(records[0] as DecisionRecord), decisionLine(stripped)];
    for (const report of [
      verifyChain(lines, { publicKeys: [trusted.publicKey] }),
      verifyChain(lines),
    ]) {
      assert.equal(report.break?.problem, 'malformed');
      assert.equal(report.break?.line, 2);
      assert.match(report.break?.message ?? '', /keyId and signature go together/);
    }
  });

  test('stripping keyId and signature together breaks the hash', () => {
    const { records } = signedLog(2);
    const { signature: _s, keyId: _k, ...stripped } = records[1] as DecisionRecord;
    const report = verifyChain([
      decisionLine(records[0] as DecisionRecord),
      decisionLine(stripped),
    ]);
    assert.equal(report.break?.problem, 'altered');
    assert.equal(report.break?.line, 2);
  });

  test('key rotation: a writer on key 1 and its successor on key 2 verify when both keys are given', () => {
    const rotated = [
      ...signedLog(2, trusted.privateKey, 'gw-old').lines,
      ...signedLog(2, other.privateKey, 'gw-new').lines,
    ];
    const both = verifyChain(rotated, { publicKeys: [trusted.publicKey, other.publicKey] });
    assert.equal(both.ok, true, both.break?.message);
    assert.deepEqual(
      both.identity.keyIds,
      [keyIdOf(trusted.publicKey), keyIdOf(other.publicKey)].sort(),
    );
    const onlyOld = verifyChain(rotated, { publicKeys: [trusted.publicKey] });
    assert.equal(onlyOld.break?.problem, 'unknown-key');
    assert.equal(onlyOld.break?.line, 3);
  });
});

describe('key files', () => {
  test('a generated key round-trips through the parsers the gateway and verify use', () => {
    const generated = generateSigningKey();
    const privateKey = parseSigningKey(generated.privateKeyPem);
    const [publicKey] = parsePublicKeys(generated.publicKeyPem);
    assert.equal(keyIdOf(privateKey), generated.keyId);
    assert.equal(keyIdOf(publicKey as KeyObject), generated.keyId);
  });

  test('a file with several public keys (and comments) gives each of them', () => {
    const a = generateSigningKey();
    const b = generateSigningKey();
    const keys = parsePublicKeys(`# current\n${a.publicKeyPem}\n# previous\n${b.publicKeyPem}`);
    assert.deepEqual(keys.map(keyIdOf), [a.keyId, b.keyId]);
  });

  test('bad private keys are refused with a message that says what is expected', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    for (const [pem, pattern] of [
      ['not a key', /not a PEM private key/],
      [generateSigningKey().publicKeyPem, /not a PEM private key/],
      [ec.export({ format: 'pem', type: 'pkcs8' }) as string, /an ec private key, not Ed25519/],
    ] as const) {
      assert.throws(
        () => parseSigningKey(pem),
        (error: unknown) => isMcpworksError(error) && pattern.test(error.message),
      );
    }
  });

  test('public key files without an Ed25519 key are refused', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    assert.throws(() => parsePublicKeys('nothing here'), /no "-----BEGIN PUBLIC KEY-----" block/);
    assert.throws(
      () => parsePublicKeys(ec.export({ format: 'pem', type: 'spki' }) as string),
      /public key 1: an ec key, not Ed25519/,
    );
  });
});

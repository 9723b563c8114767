import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import { argumentsDigest, canonicalJson } from './canonical.ts';
import { DecisionRecordSchema, GENESIS_HASH, computeRecordHash } from './record.ts';
import {
  createDecisionRecorder,
  jsonLineDecisionSink,
  memoryDecisionSink,
  decisionLine,
  type DecisionEntry,
} from './recorder.ts';
import { entry } from './testing/builders.ts';
import { verifyChain } from './verify.ts';

describe('canonicalJson', () => {
  test('sorts keys at every level and drops undefined members', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } }),
      '{"a":{"d":[1,{"x":1,"y":2}]},"b":1}',
    );
  });

  test('equal arguments in any key order have one digest', () => {
    assert.equal(argumentsDigest({ a: 1, b: 'x' }), argumentsDigest({ b: 'x', a: 1 }));
    assert.notEqual(argumentsDigest({ a: 1 }), argumentsDigest({ a: 2 }));
  });
});

describe('createDecisionRecorder', () => {
  test('chains records: seq from 0, prevHash of the previous record, hash over the content', () => {
    const sink = memoryDecisionSink();
    const recorder = createDecisionRecorder({
      sinks: [sink],
      clock: manualClock(),
      writerId: 'gw-1',
    });
    const first = recorder.record(entry());
    const second = recorder.record(entry({ effect: 'Deny', outcome: 'denied' }));
    assert.equal(first.seq, 0);
    assert.equal(first.prevHash, GENESIS_HASH);
    assert.equal(second.seq, 1);
    assert.equal(second.prevHash, first.hash);
    assert.equal(first.hash, computeRecordHash(first));
    assert.deepEqual(sink.records, [first, second]);
  });

  test('records are valid against the schema, with time from the clock', () => {
    const clock = manualClock(new Date('2026-03-01T10:00:00Z'));
    const recorder = createDecisionRecorder({ sinks: [], clock, writerId: 'gw-1' });
    const record = recorder.record(entry());
    assert.equal(record.timestamp, '2026-03-01T10:00:00.000Z');
    assert.ok(DecisionRecordSchema.safeParse(record).success);
  });

  test('fields outside the schema are dropped, so the record still verifies', () => {
    const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-1' });
    const record = recorder.record({ ...entry(), internalNote: 'x' } as ReturnType<typeof entry>);
    assert.equal('internalNote' in record, false);
    assert.equal(verifyChain([decisionLine(record)]).ok, true);
  });

  test('keeps a decisionId the gateway chose', () => {
    const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-1' });
    const id = '3f1c1c8e-6f1e-4a43-9d5c-2b2f7e8a9b10';
    assert.equal(recorder.record(entry({ decisionId: id })).decisionId, id);
  });

  test('a throwing sink is reported and does not stop the others or the chain', () => {
    const sink = memoryDecisionSink();
    const failures: unknown[] = [];
    const recorder = createDecisionRecorder({
      sinks: [
        {
          write() {
            throw new Error('disk full');
          },
        },
        sink,
      ],
      clock: manualClock(),
      writerId: 'gw-1',
      onSinkError: (error) => failures.push(error),
    });
    recorder.record(entry());
    recorder.record(entry());
    assert.equal(failures.length, 2);
    assert.deepEqual(
      sink.records.map((r) => r.seq),
      [0, 1],
    );
  });

  test('a record with every field carries each schema field, keys in canonical order', () => {
    const recorder = createDecisionRecorder({
      sinks: [],
      clock: manualClock(),
      writerId: 'gw-1',
      signingKey: generateKeyPairSync('ed25519').privateKey,
    });
    const record = recorder.record(fullEntry());
    const { arguments: _arguments, hash: _hash, signature: _signature, ...covered } = record;
    assert.deepEqual(Object.keys(record).sort(), Object.keys(DecisionRecordSchema.shape).sort());
    assert.deepEqual(Object.keys(covered), Object.keys(covered).sort());
    assert.equal(DecisionRecordSchema.safeParse(record).success, true);
    assert.equal(record.hash, computeRecordHash(record));
  });

  test('members of nested objects outside the schema are dropped, and the record verifies', () => {
    const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-1' });
    const leaky = {
      principal: {
        kind: 'Agent',
        name: 'alice',
        groups: [],
        authMethod: 'api-key',
        token: 's3cret',
      },
      authentication: { outcome: 'authenticated', method: 'api-key', credential: 's3cret' },
      rule: { kind: 'AgentPolicy', namespace: 'team', name: 'readers', index: 0, secret: 's3cret' },
    } as unknown as Partial<DecisionEntry>;
    const record = recorder.record(entry(leaky));
    assert.doesNotMatch(JSON.stringify(record), /s3cret/);
    assert.equal(verifyChain([decisionLine(record)]).ok, true);
  });

  test('sinks get the record serialized once: its JSON, hash included', () => {
    const texts: string[] = [];
    const recorder = createDecisionRecorder({
      sinks: [{ write: (_record, json) => void texts.push(json) }],
      clock: manualClock(),
      writerId: 'gw-1',
    });
    const record = recorder.record(fullEntry());
    assert.deepEqual(JSON.parse(texts[0] as string), record);
  });

  test('rejects an empty writerId when created', () => {
    assert.throws(
      () => createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: '' }),
      /writerId/,
    );
  });
});

function fullEntry(): DecisionEntry {
  return entry({
    sessionId: 'b3c1f9f0-8d1e-4c2a-9a3e-2f7c0d1b9e11',
    arguments: { path: '/tmp/x' },
    outcome: 'overloaded',
    refusal: 'principal-share',
    egress: [
      {
        host: 'api.example.com',
        port: 443,
        address: '203.0.113.7',
        allowed: true,
        reason: 'allowed',
        bytesUp: 512,
        bytesDown: 2048,
        durationMs: 31.5,
      },
    ],
    egressOmitted: 3,
    redactions: { API_TOKEN: 2 },
    audit: [
      {
        policy: 'ClusterAgentPolicy/strict',
        effect: 'Deny',
        rule: { kind: 'ClusterAgentPolicy', name: 'strict', index: 2 },
        reason: 'would deny',
        changesDecision: true,
      },
    ],
  });
}

describe('jsonLineDecisionSink', () => {
  function capture() {
    const lines: string[] = [];
    return { lines, destination: { write: (text: string) => void lines.push(text) } };
  }

  test('writes one line per record: level, the record at the top level, msg "decision"', () => {
    const { lines, destination } = capture();
    const recorder = createDecisionRecorder({
      sinks: [jsonLineDecisionSink(destination)],
      clock: manualClock(),
      writerId: 'gw-1',
    });
    const record = recorder.record(fullEntry());
    assert.equal(lines.length, 1);
    assert.match(lines[0] as string, /^\{"level":"info",.*,"msg":"decision"\}\n$/);
    assert.deepEqual(JSON.parse(lines[0] as string), { level: 'info', ...record, msg: 'decision' });
  });

  test('its output verifies, raw arguments (when the server opts in) included', () => {
    const { lines, destination } = capture();
    const recorder = createDecisionRecorder({
      sinks: [jsonLineDecisionSink(destination)],
      clock: manualClock(),
      writerId: 'gw-1',
    });
    recorder.record(fullEntry());
    recorder.record(entry({ effect: 'Deny', outcome: 'denied', reason: 'quote " and \\ and \n' }));
    const report = verifyChain(lines.join('').split('\n'));
    assert.equal(report.ok, true, report.break?.message);
    assert.equal(report.records, 2);
  });

  test('decisionLine is byte for byte the line the sink writes', () => {
    const { lines, destination } = capture();
    const recorder = createDecisionRecorder({
      sinks: [jsonLineDecisionSink(destination)],
      clock: manualClock(),
      writerId: 'gw-1',
    });
    const records = [recorder.record(fullEntry()), recorder.record(entry())];
    assert.deepEqual(
      lines,
      records.map((r) => `${decisionLine(r)}\n`),
    );
  });

  test('a line pino would write for the same record does not verify: not the canonical bytes', () => {
    const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-1' });
    const record = recorder.record(entry());
    const pinoShaped = JSON.stringify({
      level: 'info',
      time: 'x',
      pid: 1,
      ...record,
      msg: 'decision',
    });
    assert.equal(verifyChain([pinoShaped]).break?.problem, 'malformed');
  });
});

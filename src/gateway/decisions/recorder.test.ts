import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger } from '../../shared/logger.ts';
import { manualClock } from '../../shared/clock.ts';
import { argumentsDigest, canonicalJson } from './canonical.ts';
import { DecisionRecordSchema, GENESIS_HASH, computeRecordHash } from './record.ts';
import { createDecisionRecorder, memoryDecisionSink, pinoDecisionSink } from './recorder.ts';
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
    assert.equal(verifyChain([JSON.stringify({ msg: 'decision', ...record })]).ok, true);
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

  test('rejects an empty writerId when created', () => {
    assert.throws(
      () => createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: '' }),
      /writerId/,
    );
  });
});

describe('pinoDecisionSink', () => {
  function capture() {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    return { lines, logger: createLogger({ destination, level: 'info' }) };
  }

  test('writes one JSON line per record with msg "decision" and the record at the top level', () => {
    const { lines, logger } = capture();
    const recorder = createDecisionRecorder({
      sinks: [pinoDecisionSink(logger)],
      clock: manualClock(),
      writerId: 'gw-1',
    });
    const record = recorder.record(entry());
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0] as string) as Record<string, unknown>;
    assert.equal(line['msg'], 'decision');
    assert.equal(line['hash'], record.hash);
    assert.equal(line['decisionId'], record.decisionId);
  });

  test('its output verifies, even though the root logger redacts raw arguments', () => {
    const { lines, logger } = capture();
    logger.info('gateway started');
    const recorder = createDecisionRecorder({
      sinks: [pinoDecisionSink(logger)],
      clock: manualClock(),
      writerId: 'gw-1',
    });
    recorder.record(entry({ arguments: { path: '/tmp/x' } }));
    recorder.record(entry());
    assert.match(lines[1] as string, /"arguments":"\[redacted\]"/);
    const report = verifyChain(lines);
    assert.equal(report.ok, true, report.break?.message);
    assert.equal(report.records, 2);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import { argumentsDigest } from './canonical.ts';
import { computeRecordHash, type DecisionRecord } from './record.ts';
import { createDecisionRecorder, decisionLine } from './recorder.ts';
import { entry } from './testing/builders.ts';
import { verifyChain } from './verify.ts';

function records(count: number, writerId = 'gw-1'): DecisionRecord[] {
  const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId });
  return Array.from({ length: count }, (_, i) => recorder.record(entry({ durationMs: i })));
}

/** The line as the recorder's sink writes it, for any (possibly tampered) record. */
const line = (record: object) => decisionLine(record as DecisionRecord);
const lines = (list: object[]) => list.map(line);

describe('verifyChain', () => {
  test('an intact log verifies and summarises each writer', () => {
    const report = verifyChain(lines(records(5)));
    assert.equal(report.ok, true);
    assert.equal(report.records, 5);
    assert.deepEqual(
      report.writers.map((w) => [w.writerId, w.firstSeq, w.lastSeq, w.records]),
      [['gw-1', 0, 4, 5]],
    );
  });

  test('other log lines, blank lines and text are skipped', () => {
    const input = [
      'starting',
      '',
      JSON.stringify({ level: 'info', msg: 'listening' }),
      ...lines(records(2)),
    ];
    assert.equal(verifyChain(input).ok, true);
  });

  test('a deleted record is named by the line after the gap', () => {
    const list = records(5);
    list.splice(2, 1);
    const report = verifyChain(lines(list));
    assert.equal(report.ok, false);
    assert.equal(report.break?.problem, 'deleted');
    assert.equal(report.break?.line, 3);
    assert.equal(report.break?.seq, 3);
    assert.match(
      report.break?.message ?? '',
      /records seq 2 of writer gw-1 are missing before line 3/,
    );
  });

  test('two swapped records are reported as reordered', () => {
    const list = records(5);
    [list[1], list[2]] = [list[2] as DecisionRecord, list[1] as DecisionRecord];
    const report = verifyChain(lines(list));
    assert.equal(report.break?.problem, 'reordered');
    assert.equal(report.break?.line, 2);
    assert.match(report.break?.message ?? '', /seq 1 comes later/);
  });

  test('a record moved back is reported as reordered', () => {
    const list = records(4);
    const moved = list.splice(1, 1)[0] as DecisionRecord;
    list.push(moved);
    assert.equal(verifyChain(lines(list)).break?.problem, 'reordered');
  });

  test('a duplicated record is reported', () => {
    const list = records(3);
    list.splice(2, 0, list[1] as DecisionRecord);
    const report = verifyChain(lines(list));
    assert.equal(report.break?.problem, 'reordered');
    assert.match(report.break?.message ?? '', /duplicates/);
  });

  test('an altered field is named by its own line', () => {
    const list = records(4);
    list[2] = { ...(list[2] as DecisionRecord), effect: 'Allow', reason: 'nothing to see' };
    const report = verifyChain(lines(list));
    assert.equal(report.break?.problem, 'altered');
    assert.equal(report.break?.line, 3);
    assert.equal(report.break?.seq, 2);
  });

  test('an altered and re-hashed record is named by the broken link after it', () => {
    const list = records(4);
    const forged = { ...(list[1] as DecisionRecord), effect: 'Deny' as const };
    list[1] = { ...forged, hash: computeRecordHash(forged) };
    const report = verifyChain(lines(list));
    assert.equal(report.break?.problem, 'altered');
    assert.equal(report.break?.line, 2);
    assert.equal(report.break?.seq, 1);
  });

  test('raw arguments that do not match argumentsSha256 are an alteration', () => {
    const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-1' });
    const record = recorder.record(
      entry({
        arguments: { path: '/tmp/x' },
        argumentsSha256: argumentsDigest({ path: '/tmp/x' }),
      }),
    );
    const report = verifyChain([line({ ...record, arguments: { path: '/etc/shadow' } })]);
    assert.equal(report.break?.problem, 'altered');
    assert.match(report.break?.message ?? '', /arguments do not match/);
  });

  test('lines the recorder could not have written do not verify, though their fields would', () => {
    const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-1' });
    const record = recorder.record(
      entry({ outcome: 'denied', effect: 'Deny', argumentsSha256: argumentsDigest({ a: 1 }) }),
    );
    const genuine = line(record);
    assert.equal(verifyChain([genuine]).ok, true);
    const { hash, ...unhashed } = record;
    const forgeries = {
      // First-wins readers (and grep) would see "ok".
      'a repeated key before the genuine one': genuine.replace(
        '{"level":"info",',
        '{"level":"info","outcome":"ok",',
      ),
      'an extra top-level member': genuine.replace(
        ',"msg":"decision"}',
        ',"approvedBy":"ciso","msg":"decision"}',
      ),
      'an extra nested member': genuine.replace('"kind":"Agent"', '"kind":"Agent","tenant":"t2"'),
      'other spacing': genuine.replace('"level":"info",', '"level": "info", '),
      'members in another order': JSON.stringify({
        level: 'info',
        hash,
        ...unhashed,
        msg: 'decision',
      }),
    };
    for (const [what, forged] of Object.entries(forgeries)) {
      assert.notEqual(forged, genuine, what);
      const report = verifyChain([forged]);
      assert.equal(report.break?.problem, 'malformed', what);
      assert.match(report.break?.message ?? '', /not a line the recorder writes/, what);
    }
    assert.match(
      verifyChain([forgeries['a repeated key before the genuine one']]).break?.message ?? '',
      /the key "outcome" appears twice/,
    );
  });

  test('arguments added to a record the recorder wrote without them are an alteration', () => {
    const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-1' });
    const { argumentsSha256: _none, ...bare } = entry();
    const record = recorder.record(bare);
    const report = verifyChain([decisionLine(record, { path: '/etc/shadow' })]);
    assert.equal(report.break?.problem, 'altered');
    assert.match(
      report.break?.message ?? '',
      /carries arguments but the recorder wrote no argumentsSha256/,
    );
  });

  test('a damaged decision line is malformed', () => {
    const input = lines(records(3));
    input[1] = (input[1] as string).slice(0, 40);
    const report = verifyChain(input);
    assert.equal(report.break?.problem, 'malformed');
    assert.equal(report.break?.line, 2);
  });

  test('a decision line missing a field is malformed and names the field', () => {
    const { hash: _hash, ...rest } = records(1)[0] as DecisionRecord;
    const report = verifyChain([JSON.stringify({ level: 'info', ...rest, msg: 'decision' })]);
    assert.equal(report.break?.problem, 'malformed');
    assert.match(report.break?.message ?? '', /hash/);
  });

  test('interleaved writers each keep their own chain', () => {
    const a = records(3, 'gw-a');
    const b = records(3, 'gw-b');
    const input = lines([a[0], b[0], b[1], a[1], a[2], b[2]] as DecisionRecord[]);
    const report = verifyChain(input);
    assert.equal(report.ok, true);
    assert.equal(report.writers.length, 2);
  });

  test('a deletion in one of two interleaved writers is found', () => {
    const a = records(3, 'gw-a');
    const b = records(3, 'gw-b');
    const report = verifyChain(lines([a[0], b[0], a[2], b[1], b[2]] as DecisionRecord[]));
    assert.equal(report.break?.writerId, 'gw-a');
    assert.equal(report.break?.problem, 'deleted');
  });

  test('a chain that starts after seq 0 is a note, or a deletion when the start is required', () => {
    const input = lines(records(4).slice(2));
    const relaxed = verifyChain(input);
    assert.equal(relaxed.ok, true);
    assert.match(relaxed.notes[0] ?? '', /starts at seq 2/);
    assert.equal(verifyChain(input, { requireStart: true }).break?.problem, 'deleted');
  });

  test('a truncated tail is found when the last seq is known', () => {
    const input = lines(records(5).slice(0, 3));
    assert.equal(verifyChain(input).ok, true, 'the chain alone cannot tell');
    const report = verifyChain(input, { expectLastSeq: new Map([['gw-1', 4]]) });
    assert.equal(report.break?.problem, 'truncated');
    assert.match(report.break?.message ?? '', /up to seq 4 but the input has records up to seq 2/);
  });
});

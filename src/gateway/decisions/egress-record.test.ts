// The decision record's `egress` attempts and `redactions` counts: written by the recorder,
// covered by the hash like every field, and absent from (still verifying) older records.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import type { EgressAttemptRecord } from '../../executor/types.ts';
import { newRequestContext, toDecisionEntry } from '../context.ts';
import { MAX_RECORDED_ATTEMPTS, recordedEgress, redactionCounts } from './egress.ts';
import type { GatewaySnapshot } from '../source/types.ts';
import type { DecisionRecord } from './record.ts';
import { createDecisionRecorder, decisionLine, type DecisionEntry } from './recorder.ts';
import { entry } from './testing/builders.ts';
import { verifyChain } from './verify.ts';

const refused: NonNullable<DecisionEntry['egress']>[number] = {
  host: 'pastebin.com',
  port: 443,
  allowed: false,
  reason: 'policy-denied',
  policy: 'ClusterAgentPolicy no-paste',
  bytesUp: 0,
  bytesDown: 0,
  durationMs: 0.4,
};
const allowed: NonNullable<DecisionEntry['egress']>[number] = {
  host: 'api.example.com',
  port: 443,
  address: '203.0.113.7',
  allowed: true,
  reason: 'allowed',
  bytesUp: 700,
  bytesDown: 5120,
  durationMs: 42,
};

function recordAll(entries: DecisionEntry[]): DecisionRecord[] {
  const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-1' });
  return entries.map((e) => recorder.record(e));
}

describe('decision record: egress and redactions', () => {
  test('both are written in canonical order and the chain verifies, mixed with records without them', () => {
    const list = recordAll([
      entry(),
      entry({ egress: [allowed, refused], redactions: { Z_TOKEN: 1, API_TOKEN: 3 } }),
      entry(),
    ]);
    const lines = list.map((r) => decisionLine(r));
    assert.match(
      lines[1] as string,
      /"egress":\[\{"address":"203\.0\.113\.7","allowed":true,"bytesDown":5120,"bytesUp":700,"durationMs":42,"host":"api\.example\.com","port":443,"reason":"allowed"\},\{"allowed":false,.*"policy":"ClusterAgentPolicy no-paste","port":443,"reason":"policy-denied"\}\]/,
    );
    assert.match(lines[1] as string, /"redactions":\{"API_TOKEN":3,"Z_TOKEN":1\}/);
    assert.doesNotMatch(lines[0] as string, /"egress"|"redactions"/);
    const report = verifyChain(lines);
    assert.equal(report.ok, true, report.break?.message);
    assert.equal(report.records, 3);
  });

  for (const [what, tamper] of [
    [
      'a refused attempt shown as allowed',
      (r: DecisionRecord) => ({ ...r, egress: [{ ...refused, allowed: true, reason: 'allowed' }] }),
    ],
    ['an attempt removed', (r: DecisionRecord) => ({ ...r, egress: [] })],
    [
      'bytes sent made smaller',
      (r: DecisionRecord) => ({ ...r, egress: [{ ...refused, bytesUp: 1 }] }),
    ],
    ['a redaction count lowered', (r: DecisionRecord) => ({ ...r, redactions: { API_TOKEN: 1 } })],
    ['the redactions removed', (r: DecisionRecord) => ({ ...r, redactions: undefined })],
  ] as const) {
    test(`${what} is an alteration`, () => {
      const [first, second] = recordAll([
        entry({ egress: [refused], redactions: { API_TOKEN: 4 } }),
        entry(),
      ]) as [DecisionRecord, DecisionRecord];
      const report = verifyChain([decisionLine(tamper(first)), decisionLine(second)]);
      assert.equal(report.ok, false);
      assert.equal(report.break?.problem, 'altered');
      assert.equal(report.break?.line, 1);
    });
  }

  test("members the schema does not have (a payload, the proxy's detail) never reach the record", () => {
    const leaky = {
      ...refused,
      detail: 'GET /?token=s3cret',
      sni: 's3cret.example',
      payload: 's3cret',
    } as unknown as typeof refused;
    const [record] = recordAll([entry({ egress: [leaky] })]) as [DecisionRecord];
    assert.doesNotMatch(JSON.stringify(record), /s3cret/);
    assert.equal(verifyChain([decisionLine(record)]).ok, true);
  });

  test('an extra member inserted into a written attempt makes the line malformed', () => {
    const [record] = recordAll([entry({ egress: [refused] })]) as [DecisionRecord];
    const forged = decisionLine(record).replace('"allowed":false', '"allowed":false,"note":"x"');
    assert.equal(verifyChain([forged]).break?.problem, 'malformed');
  });
});

describe('toDecisionEntry and recordedEgress: what the executor reports, made fit for the record', () => {
  const snapshot = {} as GatewaySnapshot;
  function recorded(egress: unknown, redactions?: unknown) {
    const ctx = newRequestContext(snapshot, 'team/files', 0, 'tools/call');
    ctx.egress = recordedEgress(egress);
    const counts = redactionCounts(redactions);
    if (counts !== undefined) ctx.redactions = counts;
    const [record] = recordAll([toDecisionEntry(ctx, 5, false)]) as [DecisionRecord];
    // Whatever the executor sent, the record is one `audit verify` accepts.
    assert.equal(verifyChain([decisionLine(record)]).ok, true);
    return record;
  }

  test("the executor's attempts are copied without sni, detail or end, durations rounded", () => {
    const attempt: EgressAttemptRecord = {
      host: 'api.example.com',
      port: 443,
      address: '203.0.113.7',
      sni: 'api.example.com',
      allowed: false,
      reason: 'sni-mismatch',
      detail: 'hello named other.example',
      end: 'proxy-closed',
      bytesUp: 10,
      bytesDown: 0,
      durationMs: 1.23456,
    };
    assert.deepEqual(recorded([attempt]).egress, [
      {
        address: '203.0.113.7',
        allowed: false,
        bytesDown: 0,
        bytesUp: 10,
        durationMs: 1.235,
        host: 'api.example.com',
        port: 443,
        reason: 'sni-mismatch',
      },
    ]);
  });

  test('malformed attempts become schema-valid ones that show nothing was allowed', () => {
    const record = recorded([
      null,
      { host: 7, port: 70_000, allowed: 'yes', bytesUp: -1, bytesDown: 1.5, durationMs: Infinity },
      {
        host: 'h'.repeat(5000),
        port: 443,
        allowed: true,
        reason: 'allowed',
        bytesUp: 1,
        bytesDown: 1,
        durationMs: 1,
      },
    ]);
    const [a, b, c] = record.egress ?? [];
    assert.deepEqual(a, {
      allowed: false,
      bytesDown: 0,
      bytesUp: 0,
      durationMs: 0,
      host: '',
      port: 0,
      reason: 'unknown',
    });
    assert.deepEqual(b, {
      allowed: false,
      bytesDown: 0,
      bytesUp: 0,
      durationMs: 0,
      host: '',
      port: 0,
      reason: 'unknown',
    });
    assert.equal(c?.host.length, 303);
  });

  test(`a call with more than ${MAX_RECORDED_ATTEMPTS} attempts lists the first ones and counts the rest`, () => {
    const attempts = Array.from({ length: MAX_RECORDED_ATTEMPTS + 40 }, (_, i) => ({
      host: `h${i}.example`,
      port: 443,
      allowed: false,
      reason: 'not-declared',
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 0.1,
    }));
    const egress = recordedEgress(attempts);
    assert.equal(egress.all.length, MAX_RECORDED_ATTEMPTS + 40);
    const record = recorded(attempts);
    assert.equal(record.egress?.length, MAX_RECORDED_ATTEMPTS);
    assert.equal(record.egress?.at(-1)?.host, `h${MAX_RECORDED_ATTEMPTS - 1}.example`);
    assert.equal(record.egressOmitted, 40);
  });

  test('no attempts and no redactions: neither member', () => {
    const record = recorded([], { API_TOKEN: 0 });
    assert.equal('egress' in record, false);
    assert.equal('egressOmitted' in record, false);
    assert.equal('redactions' in record, false);
  });

  test('only positive integer counts under variable names are recorded', () => {
    const record = recorded(undefined, { A: 2, B: 0, C: -1, D: 1.5, 'not a name': 3, E: '4' });
    assert.deepEqual(record.redactions, { A: 2 });
    assert.equal(redactionCounts(['A']), undefined);
  });
});

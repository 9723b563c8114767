// The decision record's `egress` attempts and `redactions` counts: written by the recorder,
// covered by the hash like every field, and absent from (still verifying) older records.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import type { EgressAttemptRecord } from '../../executor/types.ts';
import { newRequestContext, toDecisionEntry } from '../context.ts';
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

describe('toDecisionEntry: egress and redactions from the call', () => {
  const snapshot = {} as GatewaySnapshot;
  function ctxWith(egress: EgressAttemptRecord[] | undefined, redactions?: Record<string, number>) {
    const ctx = newRequestContext(snapshot, 'team/files', 0, 'tools/call');
    if (egress !== undefined) ctx.egress = egress;
    if (redactions !== undefined) ctx.redactions = redactions;
    return ctx;
  }

  test("the executor's attempts are copied without sni, detail or end, durations rounded", () => {
    const entry = toDecisionEntry(
      ctxWith([
        {
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
        },
      ]),
      5,
      false,
    );
    assert.deepEqual(entry.egress, [
      {
        host: 'api.example.com',
        port: 443,
        address: '203.0.113.7',
        allowed: false,
        reason: 'sni-mismatch',
        bytesUp: 10,
        bytesDown: 0,
        durationMs: 1.235,
      },
    ]);
  });

  test('no attempts and no redactions: neither member', () => {
    const entry = toDecisionEntry(ctxWith([], { API_TOKEN: 0 }), 5, false);
    assert.equal('egress' in entry, false);
    assert.equal('redactions' in entry, false);
  });

  test('only positive integer counts are recorded', () => {
    const entry = toDecisionEntry(ctxWith(undefined, { A: 2, B: 0, C: -1, D: 1.5 }), 5, false);
    assert.deepEqual(entry.redactions, { A: 2 });
  });
});

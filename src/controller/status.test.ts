import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  computePolicyStatus,
  computeServerStatus,
  rolloutState,
  statusEqual,
  type ServerObservation,
} from './status.ts';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:05:00Z');

function observation(overrides: Partial<ServerObservation> = {}): ServerObservation {
  return {
    generation: 3,
    problems: [],
    gateway: { name: 'gateway', complete: true, available: 2, desired: 2 },
    executor: { name: 'executor', complete: true, available: 2, desired: 2 },
    toolCount: 1,
    endpoint: 'http://demo-gateway.a.svc:8080/mcp',
    policies: [],
    ...overrides,
  };
}

const cond = (s: { conditions?: { type: string }[] | undefined }, type: string) =>
  s.conditions?.find((c) => c.type === type) as unknown as {
    status: string;
    reason: string;
    message: string;
    lastTransitionTime: string;
    observedGeneration?: number;
  };

test('a rolled-out server without problems is Ready with the observed generation', () => {
  const s = computeServerStatus(observation(), undefined, t0);
  assert.equal(cond(s, 'Ready').status, 'True');
  assert.equal(cond(s, 'Ready').observedGeneration, 3);
  assert.equal(s.observedGeneration, 3);
});

test('a missing Secret is Degraded and not Ready, with the message a person needs', () => {
  const s = computeServerStatus(
    observation({
      problems: [{ reason: 'SecretNotFound', message: 'Secret team-a/keys not found' }],
    }),
    undefined,
    t0,
  );
  assert.equal(cond(s, 'Degraded').status, 'True');
  assert.equal(cond(s, 'Degraded').message, 'Secret team-a/keys not found');
  assert.equal(cond(s, 'Ready').status, 'False');
  assert.equal(cond(s, 'Ready').reason, 'SecretNotFound');
});

test('an unchanged observation yields an equal status later (nothing to write)', () => {
  const first = computeServerStatus(observation(), undefined, t0);
  const second = computeServerStatus(observation(), first, t1);
  assert.ok(statusEqual(first, second));
});

test('lastTransitionTime moves only when a condition changes status', () => {
  const first = computeServerStatus(observation(), undefined, t0);
  const rolling = computeServerStatus(
    observation({ gateway: { name: 'gateway', complete: false, available: 1, desired: 2 } }),
    first,
    t1,
  );
  assert.equal(
    cond(rolling, 'Degraded').lastTransitionTime,
    cond(first, 'Degraded').lastTransitionTime,
  );
  assert.notEqual(
    cond(rolling, 'Ready').lastTransitionTime,
    cond(first, 'Ready').lastTransitionTime,
  );
  assert.equal(
    cond(rolling, 'Progressing').message,
    'gateway 1/2 available, executor 2/2 available',
  );
});

test('a Deployment is rolled out only when its controller observed the latest generation', () => {
  const deployment = (observedGeneration: number) => ({
    metadata: { generation: 2 },
    status: { observedGeneration, updatedReplicas: 2, availableReplicas: 2, replicas: 2 },
  });
  assert.equal(rolloutState(deployment(1), 'gateway', 2).complete, false);
  assert.equal(rolloutState(deployment(2), 'gateway', 2).complete, true);
  assert.equal(rolloutState(undefined, 'gateway', 2).complete, false);
});

test('an invalid policy is not Accepted and says why', () => {
  const s = computePolicyStatus(
    1,
    [{ reason: 'InvalidCondition', message: 'spec.rules[0].conditions[0]: does not compile' }],
    1,
    undefined,
    t0,
  );
  assert.equal(cond(s, 'Accepted').status, 'False');
  assert.equal(cond(s, 'Accepted').reason, 'InvalidCondition');
});

test("an accepted policy's message counts its rules and its egress guardrails", () => {
  assert.equal(
    cond(computePolicyStatus(1, [], 3, undefined, t0), 'Accepted').message,
    '3 rules accepted',
  );
  assert.equal(
    cond(computePolicyStatus(1, [], 0, undefined, t0, 2), 'Accepted').message,
    '2 egress guardrails accepted',
  );
  assert.equal(
    cond(computePolicyStatus(1, [], 1, undefined, t0, 1), 'Accepted').message,
    '1 rules and 1 egress guardrails accepted',
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canAcquire, microTime } from './leader-election.ts';

const now = new Date('2026-01-01T00:00:10.123Z');
const lease = (holderIdentity: string, renewTime: string) => ({
  spec: { holderIdentity, renewTime, leaseDurationSeconds: 15 },
});

test('Lease times are MicroTime: six fractional digits', () => {
  assert.equal(microTime(now), '2026-01-01T00:00:10.123000Z');
});

test('a lease renewed within its duration by another holder cannot be taken', () => {
  assert.deepEqual(canAcquire(lease('b', '2026-01-01T00:00:00.000000Z'), 'a', now), {
    ok: false,
    reason: 'held by b',
  });
});

test('an expired lease can be taken', () => {
  assert.equal(canAcquire(lease('b', '2025-12-31T23:59:00.000000Z'), 'a', now).ok, true);
});

test('a released lease (no holder) and our own lease can be taken', () => {
  assert.equal(canAcquire(lease('', '2026-01-01T00:00:09.000000Z'), 'a', now).ok, true);
  assert.equal(canAcquire(lease('a', '2026-01-01T00:00:09.000000Z'), 'a', now).ok, true);
});

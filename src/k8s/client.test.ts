import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLimiter } from './client.ts';

test('the request limiter runs at most `max` calls at once, the others in order', async () => {
  const limit = createLimiter(2);
  let running = 0;
  let maxRunning = 0;
  const started: number[] = [];
  const releases: (() => void)[] = [];
  const calls = [0, 1, 2, 3, 4].map((i) =>
    limit(async () => {
      started.push(i);
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((r) => releases.push(r));
      running--;
      return i;
    }),
  );
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setImmediate(r));
    releases.shift()?.();
  }
  assert.deepEqual(await Promise.all(calls), [0, 1, 2, 3, 4]);
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  assert.equal(maxRunning, 2);
});

test('a failing call frees its place', async () => {
  const limit = createLimiter(1);
  await assert.rejects(
    limit(() => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(await limit(() => Promise.resolve('next')), 'next');
});

test('no limit, or a bad one, as asked', async () => {
  assert.equal(await createLimiter(undefined)(() => Promise.resolve(1)), 1);
  assert.throws(() => createLimiter(0), /maxRequestsInFlight must be >= 1/);
});

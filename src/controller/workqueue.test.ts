import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay, createWorkQueue, REQUEUE_TRIGGER } from './workqueue.ts';

test('a key added many times while waiting is processed once', async () => {
  const q = createWorkQueue({ concurrency: 1 });
  const seen: string[] = [];
  for (let i = 0; i < 5; i++) q.add('a');
  q.start(
    async (key) => void seen.push(key),
    () => {},
  );
  await q.idle();
  assert.deepEqual(seen, ['a']);
  await q.shutdown();
});

test('a key is never processed by two workers at once; an add during processing runs it again after', async () => {
  const q = createWorkQueue({ concurrency: 4 });
  let running = 0;
  let maxRunning = 0;
  let runs = 0;
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  q.start(
    async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      runs++;
      if (runs === 1) await gate;
      running--;
    },
    () => {},
  );
  q.add('a');
  await new Promise((r) => setImmediate(r));
  q.add('a');
  q.add('a');
  release();
  await q.idle();
  await new Promise((r) => setImmediate(r));
  await q.idle();
  assert.equal(maxRunning, 1);
  assert.equal(runs, 2);
  await q.shutdown();
});

test('at most `concurrency` keys run at once', async () => {
  const q = createWorkQueue({ concurrency: 2 });
  let running = 0;
  let maxRunning = 0;
  q.start(
    async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setImmediate(r));
      running--;
    },
    () => {},
  );
  for (let i = 0; i < 10; i++) q.add(`k${i}`);
  await q.idle();
  assert.equal(maxRunning, 2);
  await q.shutdown();
});

test('failures back off exponentially up to the cap', () => {
  assert.deepEqual(
    [1, 2, 3, 4].map((n) => backoffDelay(n, 100, 500)),
    [100, 200, 400, 500],
  );
});

test('a failing key is retried after its backoff', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const q = createWorkQueue({ concurrency: 1, baseDelayMs: 1_000 });
  let attempts = 0;
  const errors: unknown[] = [];
  q.start(
    async () => {
      attempts++;
      if (attempts === 1) throw new Error('boom');
    },
    (_key, error) => errors.push(error),
  );
  q.add('a');
  await q.idle();
  assert.equal(attempts, 1);
  t.mock.timers.tick(999);
  await q.idle();
  assert.equal(attempts, 1);
  t.mock.timers.tick(1);
  await new Promise((r) => setImmediate(r));
  await q.idle();
  assert.equal(attempts, 2);
  assert.equal(errors.length, 1);
  await q.shutdown();
});

test('a reconcile is attributed to the first trigger that queued its key', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const q = createWorkQueue({ concurrency: 1, baseDelayMs: 1_000 });
  const seen: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  q.add('a', 'mcpserver');
  q.add('a', 'deployments'); // coalesces into the queued reconcile
  q.start(
    async (key, trigger) => {
      seen.push(`${key} ${trigger}`);
      if (seen.length === 1) await gate;
      if (seen.length === 2) throw new Error('boom');
    },
    () => {},
  );
  await new Promise((r) => setImmediate(r));
  q.add('a', 'services'); // while processing: runs again after, as `services`
  q.add('a', 'resync');
  release();
  await new Promise((r) => setImmediate(r));
  await q.idle();
  t.mock.timers.tick(1_000); // the failure's retry
  await new Promise((r) => setImmediate(r));
  await q.idle();
  assert.deepEqual(seen, ['a mcpserver', 'a services', `a ${REQUEUE_TRIGGER}`]);
  await q.shutdown();
});

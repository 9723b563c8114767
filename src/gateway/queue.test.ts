import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ToolCallRequest, ToolCallResult, ToolExecutor } from '../executor/types.ts';
import { withQueue } from './queue.ts';

const OK: ToolCallResult = {
  outcome: 'ok',
  isError: false,
  content: [],
  durationMs: 0,
  outputBytes: 0,
  executor: 'x',
};
const request = (n: number) => ({ callId: `c${n}` }) as unknown as ToolCallRequest;

/** An executor whose calls finish only when the test says so. */
function gatedExecutor() {
  const started: string[] = [];
  const gates: (() => void)[] = [];
  const executor: ToolExecutor = {
    execute(req) {
      started.push(req.callId);
      return new Promise((resolve) => gates.push(() => resolve(OK)));
    },
    close: async () => {},
  };
  return { executor, started, finishOne: () => gates.shift()?.() };
}

const tick = () => new Promise((r) => setImmediate(r));

test('calls beyond maxConcurrent wait and start in order as slots free up', async () => {
  const g = gatedExecutor();
  const q = withQueue(g.executor, { maxConcurrent: 2, maxQueued: 10, maxWaitMs: 60_000 });
  const calls = [1, 2, 3, 4].map((n) => q.execute(request(n)));
  await tick();
  assert.deepEqual(g.started, ['c1', 'c2']);
  assert.equal(q.waiting, 2);
  g.finishOne();
  await tick();
  assert.deepEqual(g.started, ['c1', 'c2', 'c3']);
  g.finishOne();
  g.finishOne();
  await tick();
  g.finishOne();
  assert.ok((await Promise.all(calls)).every((r) => r.outcome === 'ok'));
});

test('a full queue answers overloaded at once without starting the call', async () => {
  const g = gatedExecutor();
  const q = withQueue(g.executor, { maxConcurrent: 1, maxQueued: 1, maxWaitMs: 60_000 });
  void q.execute(request(1));
  void q.execute(request(2));
  const third = await q.execute(request(3));
  assert.equal(third.outcome, 'overloaded');
  assert.equal(third.isError, true);
  assert.deepEqual(g.started, ['c1']);
  g.finishOne();
  await tick();
  g.finishOne();
});

test('a call that waits longer than maxWaitMs is refused and never started', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const g = gatedExecutor();
  const q = withQueue(g.executor, { maxConcurrent: 1, maxQueued: 5, maxWaitMs: 1_000 });
  void q.execute(request(1));
  const waiting = q.execute(request(2));
  t.mock.timers.tick(1_000);
  assert.equal((await waiting).outcome, 'overloaded');
  assert.equal(q.waiting, 0);
  g.finishOne();
  await tick();
  assert.deepEqual(g.started, ['c1']);
});

test('an aborted waiting call leaves the queue and is never started', async () => {
  const g = gatedExecutor();
  const q = withQueue(g.executor, { maxConcurrent: 1, maxQueued: 5, maxWaitMs: 60_000 });
  void q.execute(request(1));
  const controller = new AbortController();
  const waiting = q.execute(request(2), controller.signal);
  controller.abort();
  assert.equal((await waiting).outcome, 'overloaded');
  g.finishOne();
  await tick();
  assert.deepEqual(g.started, ['c1']);
});

test('a slot is released when the executor throws', async () => {
  let fail = true;
  const executor: ToolExecutor = {
    async execute() {
      if (fail) throw new Error('boom');
      return OK;
    },
    close: async () => {},
  };
  const q = withQueue(executor, { maxConcurrent: 1, maxQueued: 0, maxWaitMs: 0 });
  await assert.rejects(q.execute(request(1)));
  fail = false;
  assert.equal((await q.execute(request(2))).outcome, 'ok');
});

test('bad options are rejected at construction', () => {
  assert.throws(
    () => withQueue(gatedExecutor().executor, { maxConcurrent: 0, maxQueued: 1, maxWaitMs: 1 }),
    RangeError,
  );
});

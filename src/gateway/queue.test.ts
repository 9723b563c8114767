import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ToolCallRequest, ToolCallResult, ToolExecutor } from '../executor/types.ts';
import {
  fairShare,
  resolveLimits,
  withFairQueue,
  type FairQueueLimits,
  type Timers,
} from './queue.ts';

const OK: ToolCallResult = {
  outcome: 'ok',
  isError: false,
  content: [],
  durationMs: 0,
  outputBytes: 0,
  executor: 'x',
};

/** A call `id` from `caller` (an Agent name) to server `server` (in namespace default). */
function request(id: string, caller = 'alice', server = 'tools'): ToolCallRequest {
  return {
    callId: id,
    server: { namespace: 'default', name: server },
    caller: `Agent:${caller}`,
  } as ToolCallRequest;
}

/** An executor whose calls finish only when the test says so, by call id. */
function gatedExecutor() {
  const started: string[] = [];
  const gates = new Map<string, (failure?: Error) => void>();
  const executor: ToolExecutor = {
    execute(req) {
      started.push(req.callId);
      return new Promise((resolve, reject) =>
        gates.set(req.callId, (failure) => (failure ? reject(failure) : resolve(OK))),
      );
    },
    close: async () => {},
  };
  const finish = async (id: string, failure?: Error) => {
    const gate = gates.get(id);
    assert.ok(gate, `${id} is not running`);
    gates.delete(id);
    gate(failure);
    await tick();
  };
  return { executor, started, finish };
}

/** Timers that fire only when the test advances them. */
function manualTimers(): Timers & { advance(ms: number): void } {
  let now = 0;
  let nextId = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  return {
    setTimeout(fn, ms) {
      pending.set(++nextId, { at: now + ms, fn });
      return nextId;
    },
    clearTimeout(handle) {
      pending.delete(handle as number);
    },
    advance(ms) {
      now += ms;
      for (const [id, timer] of [...pending]) {
        if (timer.at <= now) {
          pending.delete(id);
          timer.fn();
        }
      }
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

function queue(limits: Partial<FairQueueLimits>, timers: Timers = manualTimers()) {
  const g = gatedExecutor();
  const q = withFairQueue(g.executor, {
    maxConcurrent: 2,
    maxQueued: 100,
    maxWaitMs: 60_000,
    timers,
    ...limits,
  });
  return { ...g, q };
}

test('the defaults: a caller gets half the slots (rounded up) and 4 × that waiting', () => {
  assert.deepEqual(resolveLimits({ maxConcurrent: 8, maxQueued: 256, maxWaitMs: 30_000 }), {
    maxConcurrent: 8,
    maxQueued: 256,
    maxWaitMs: 30_000,
    maxConcurrentPerPrincipal: 4,
    maxQueuedPerPrincipal: 16,
    maxConcurrentPerServer: 8,
    maxQueuedPerServer: 256,
  });
  assert.deepEqual([1, 2, 3, 8].map(fairShare), [1, 1, 2, 4]);
  assert.equal(
    resolveLimits({ maxConcurrent: 8, maxQueued: 10, maxWaitMs: 1 }).maxQueuedPerPrincipal,
    10,
  );
});

test('bad limits are rejected when the queue is built, naming the limit', () => {
  const executor = gatedExecutor().executor;
  for (const [limits, name] of [
    [{ maxConcurrent: 0, maxQueued: 1, maxWaitMs: 1 }, 'maxConcurrent'],
    [{ maxConcurrent: 1, maxQueued: -1, maxWaitMs: 1 }, 'maxQueued'],
    [{ maxConcurrent: 1, maxQueued: 1, maxWaitMs: Number.NaN }, 'maxWaitMs'],
    [
      { maxConcurrent: 2, maxQueued: 1, maxWaitMs: 1, maxConcurrentPerPrincipal: 0 },
      'PerPrincipal',
    ],
    [{ maxConcurrent: 2, maxQueued: 1, maxWaitMs: 1, maxQueuedPerServer: 1.5 }, 'PerServer'],
  ] as const) {
    assert.throws(
      () => withFairQueue(executor, limits),
      (e: Error) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, new RegExp(name));
        return true;
      },
    );
  }
});

test("one caller's calls wait beyond its share, oldest first, and start as its slots free", async () => {
  const g = queue({ maxConcurrent: 4, maxConcurrentPerPrincipal: 2 });
  const calls = ['a1', 'a2', 'a3', 'a4'].map((id) => g.q.execute(request(id)));
  await tick();
  assert.deepEqual(g.started, ['a1', 'a2']);
  assert.deepEqual(g.q.stats(), {
    running: 2,
    waiting: 2,
    servers: [{ server: 'default/tools', running: 2, waiting: 2 }],
  });
  await g.finish('a2');
  assert.deepEqual(g.started, ['a1', 'a2', 'a3']);
  await g.finish('a1');
  assert.deepEqual(g.started, ['a1', 'a2', 'a3', 'a4']);
  await g.finish('a3');
  await g.finish('a4');
  assert.ok((await Promise.all(calls)).every((r) => r.outcome === 'ok'));
});

test('another caller starts at once in the slots one caller may not take', async () => {
  const g = queue({ maxConcurrent: 4 });
  for (const id of ['a1', 'a2', 'a3', 'a4', 'a5']) void g.q.execute(request(id, 'alice'));
  void g.q.execute(request('b1', 'bob'));
  await tick();
  assert.deepEqual(g.started, ['a1', 'a2', 'b1']);
});

test('a freed slot goes to the caller with the fewest running calls, least recently served first', async () => {
  const g = queue({ maxConcurrent: 2, maxConcurrentPerPrincipal: 2 });
  for (const id of ['a1', 'a2', 'a3', 'a4', 'a5']) void g.q.execute(request(id, 'alice'));
  void g.q.execute(request('b1', 'bob'));
  void g.q.execute(request('b2', 'bob'));
  void g.q.execute(request('c1', 'carol'));
  await tick();
  assert.deepEqual(g.started, ['a1', 'a2']);
  // alice holds both slots: bob and carol (none running) come first, then turns alternate.
  for (const id of ['a1', 'a2', 'b1', 'a3', 'c1']) await g.finish(id);
  assert.deepEqual(g.started, ['a1', 'a2', 'b1', 'c1', 'a3', 'b2', 'a4']);
});

test("a caller with 200 waiting calls delays another's first call by one slot release", async () => {
  const g = queue({
    maxConcurrent: 2,
    maxQueued: 300,
    maxConcurrentPerPrincipal: 2,
    maxQueuedPerPrincipal: 200,
  });
  for (let i = 0; i < 202; i++) void g.q.execute(request(`a${i}`, 'alice'));
  void g.q.execute(request('b0', 'bob'));
  await tick();
  assert.equal(g.q.stats().waiting, 201);
  await g.finish('a0');
  assert.deepEqual(g.started, ['a0', 'a1', 'b0']);
});

test("a caller's waiting calls beyond its share are refused, naming the per-agent limit", async () => {
  const g = queue({ maxConcurrent: 2, maxConcurrentPerPrincipal: 1, maxQueuedPerPrincipal: 2 });
  for (const id of ['a1', 'a2', 'a3']) void g.q.execute(request(id, 'alice'));
  const refused = await g.q.execute(request('a4', 'alice'));
  assert.equal(refused.outcome, 'overloaded');
  assert.equal(refused.isError, true);
  assert.equal(refused.refusal, 'principal-share');
  assert.equal(
    refused.message,
    "agent 'alice' already has 1 call running and 2 waiting (limit per agent: 1 running, 2 waiting); try again later",
  );
  assert.equal(refused.content[0]?.text, refused.message);
  // Only alice is at her limit: bob starts in the free slot.
  void g.q.execute(request('b1', 'bob'));
  await tick();
  assert.deepEqual(g.started, ['a1', 'b1']);
});

test('service accounts and anonymous callers are named as such', async () => {
  const g = queue({ maxConcurrent: 1, maxQueuedPerPrincipal: 0 });
  const sa = { ...request('s1'), caller: 'ServiceAccount:system:serviceaccount:ci:runner' };
  void g.q.execute(sa);
  assert.match(
    (await g.q.execute({ ...sa, callId: 's2' })).message ?? '',
    /^service account 'system:serviceaccount:ci:runner' already has 1 call running/,
  );
  await g.finish('s1');
  const anonymous = { ...request('n1'), caller: 'Anonymous:anonymous' };
  void g.q.execute(anonymous);
  assert.match(
    (await g.q.execute({ ...anonymous, callId: 'n2' })).message ?? '',
    /^the anonymous caller already has 1 call running/,
  );
});

test('a full queue refuses a caller within its share, naming the total limit', async () => {
  const g = queue({ maxConcurrent: 1, maxQueued: 2 });
  void g.q.execute(request('a1', 'alice'));
  void g.q.execute(request('a2', 'alice'));
  void g.q.execute(request('b1', 'bob'));
  const refused = await g.q.execute(request('c1', 'carol'));
  assert.equal(refused.refusal, 'queue-full');
  assert.equal(
    refused.message,
    'the sandbox is busy: 1 call running, 2 waiting (limit: 1 running, 2 waiting); try again later',
  );
  assert.deepEqual(g.started, ['a1']);
});

test('a freed slot goes to the server with the fewest running calls, whatever its callers', async () => {
  const g = queue({ maxConcurrent: 2, maxConcurrentPerPrincipal: 2, maxConcurrentPerServer: 2 });
  void g.q.execute(request('x1', 'alice', 'x'));
  void g.q.execute(request('x2', 'bob', 'x'));
  // server x has many callers waiting; server y has one.
  for (const who of ['carol', 'dave', 'erin']) void g.q.execute(request(`x-${who}`, who, 'x'));
  void g.q.execute(request('y1', 'alice', 'y'));
  await tick();
  await g.finish('x1');
  assert.deepEqual(g.started, ['x1', 'x2', 'y1']);
  await g.finish('x2');
  assert.deepEqual(g.started, ['x1', 'x2', 'y1', 'x-carol']);
});

test("a server's share caps its running and waiting calls; another server still runs", async () => {
  const g = queue({
    maxConcurrent: 4,
    maxConcurrentPerServer: 2,
    maxQueuedPerServer: 1,
    maxConcurrentPerPrincipal: 4,
  });
  for (const id of ['x1', 'x2', 'x3']) void g.q.execute(request(id, id, 'x'));
  const refused = await g.q.execute(request('x4', 'x4', 'x'));
  assert.equal(refused.refusal, 'server-share');
  assert.equal(
    refused.message,
    'server default/x already has 2 calls running and 1 waiting (limit per server: 2 running, 1 waiting); try again later',
  );
  void g.q.execute(request('y1', 'alice', 'y'));
  await tick();
  assert.deepEqual(g.started, ['x1', 'x2', 'y1']);
});

test('a call that waits longer than maxWaitMs is refused and never started', async () => {
  const timers = manualTimers();
  const g = queue({ maxConcurrent: 1, maxWaitMs: 30_000 }, timers);
  void g.q.execute(request('a1', 'alice'));
  const waiting = g.q.execute(request('b1', 'bob'));
  timers.advance(29_999);
  await tick();
  assert.equal(g.q.stats().waiting, 1);
  timers.advance(1);
  const refused = await waiting;
  assert.equal(refused.outcome, 'overloaded');
  assert.equal(refused.refusal, 'wait-timeout');
  assert.equal(
    refused.message,
    'waited 30 s for a sandbox, the longest a call may wait; try again later',
  );
  assert.equal(g.q.stats().waiting, 0);
  await g.finish('a1');
  assert.deepEqual(g.started, ['a1']);
});

test('an aborted waiting call leaves the queue, is never started, and the next one gets the slot', async () => {
  const g = queue({ maxConcurrent: 1 });
  void g.q.execute(request('a1', 'alice'));
  const controller = new AbortController();
  const aborted = g.q.execute(request('b1', 'bob'), controller.signal);
  void g.q.execute(request('c1', 'carol'));
  controller.abort();
  const result = await aborted;
  assert.equal(result.outcome, 'overloaded');
  assert.equal(result.refusal, undefined);
  assert.equal(g.q.stats().waiting, 1);
  await g.finish('a1');
  assert.deepEqual(g.started, ['a1', 'c1']);
});

test('a call whose signal is already aborted is not started', async () => {
  const g = queue({ maxConcurrent: 1 });
  const result = await g.q.execute(request('a1'), AbortSignal.abort());
  assert.equal(result.outcome, 'overloaded');
  assert.deepEqual(g.started, []);
  assert.equal(g.q.stats().running, 0);
});

test('a slot is released when the executor throws, and a waiter starts in it', async () => {
  const g = queue({ maxConcurrent: 1 });
  const failing = g.q.execute(request('a1', 'alice'));
  const next = g.q.execute(request('b1', 'bob'));
  await tick();
  const rejected = assert.rejects(failing, /boom/);
  await g.finish('a1', new Error('boom'));
  await rejected;
  assert.deepEqual(g.started, ['a1', 'b1']);
  await g.finish('b1');
  assert.equal((await next).outcome, 'ok');
  assert.deepEqual(g.q.stats(), {
    running: 0,
    waiting: 0,
    servers: [{ server: 'default/tools', running: 0, waiting: 0 }],
  });
});

test('raised limits start waiting calls at once', async () => {
  const g = queue({ maxConcurrent: 1 });
  for (const id of ['a1', 'b1', 'c1']) void g.q.execute(request(id, id));
  await tick();
  assert.deepEqual(g.started, ['a1']);
  g.q.configure({ maxConcurrent: 3, maxQueued: 100, maxWaitMs: 60_000 });
  await tick();
  assert.deepEqual(g.started, ['a1', 'b1', 'c1']);
  assert.throws(() => g.q.configure({ maxConcurrent: 0, maxQueued: 1, maxWaitMs: 1 }), RangeError);
  assert.equal(g.q.limits.maxConcurrent, 3);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RuntimeDrift } from '../../executor/runtime-pins.ts';
import { resolveLimits } from '../../gateway/queue.ts';
import { runtimeDriftVerdict, serveQueueLimits } from './serve.ts';

const node20: RuntimeDrift = {
  runtime: 'node',
  path: '/usr/bin/node',
  found: '20.20.2',
  pinned: '24.21.0',
};

test('runtimes at their pins: serve says nothing', () => {
  assert.equal(runtimeDriftVerdict([], false), undefined);
});

test('a node that is not the pinned one is refused, naming both versions and the way out', () => {
  const verdict = runtimeDriftVerdict([node20], false);
  assert.ok(verdict?.refuse);
  assert.match(verdict.message, /node 20\.20\.2 at \/usr\/bin\/node, but node 24\.21\.0 is pinned/);
  assert.match(verdict.message, /start mcpworks with Node 24\.21\.0/);
  assert.match(verdict.message, /--allow-runtime-drift/);
});

test('with --allow-runtime-drift the drift is only a warning', () => {
  const python: RuntimeDrift = {
    runtime: 'python',
    path: '/usr/bin/python3',
    found: '3.12.3',
    pinned: '3.11.2',
  };
  const verdict = runtimeDriftVerdict([python], true);
  assert.deepEqual(verdict, {
    refuse: false,
    message:
      '--allow-runtime-drift: python 3.12.3 at /usr/bin/python3, but python 3.11.2 is pinned',
  });
});

test('one server: the whole queue is its own; each agent half the slots, 4 × that waiting', () => {
  assert.deepEqual(resolveLimits(serveQueueLimits(8, 1)), {
    maxConcurrent: 8,
    maxQueued: 256,
    maxWaitMs: 30_000,
    maxConcurrentPerPrincipal: 4,
    maxQueuedPerPrincipal: 16,
    maxConcurrentPerServer: 8,
    maxQueuedPerServer: 256,
  });
});

test('several servers: each may hold at most half the slots and half the queue', () => {
  const limits = resolveLimits(serveQueueLimits(8, 3));
  assert.equal(limits.maxConcurrentPerServer, 4);
  assert.equal(limits.maxQueuedPerServer, 128);
  assert.equal(resolveLimits(serveQueueLimits(1, 2)).maxConcurrentPerServer, 1);
});

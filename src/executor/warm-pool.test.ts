import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Runtime, ToolLimits } from '../api/v1alpha1/mcpserver.ts';
import { manualClock } from '../shared/clock.ts';
import { silentLogger } from '../shared/logger.ts';
import type { Sandbox } from './sandbox.ts';
import { WarmPool, poolKey } from './warm-pool.ts';

const LIMITS: ToolLimits = {
  memoryMiB: 128,
  cpuMillicores: 1000,
  pids: 16,
  maxOutputBytes: 1024,
  tmpfsMiB: 8,
};

function fakeSandbox(
  runtime: Runtime,
  limits: ToolLimits,
  spawnedAt: number,
  egress = false,
): Sandbox & { discarded: boolean } {
  let used = false;
  const sandbox: Sandbox & { discarded: boolean } = {
    runtime,
    limits,
    ...(egress ? { egressSocketPath: '/egress/sb/egress.sock' } : {}),
    spawnedAt,
    ready: Promise.resolve(),
    discarded: false,
    get usable(): boolean {
      return !used && !sandbox.discarded;
    },
    async run() {
      used = true;
      throw new Error('not in this test');
    },
    async discard() {
      sandbox.discarded = true;
    },
  };
  return sandbox;
}

function pool(size = 1, maxIdleMs = 60_000, maxKeys = 8, refillDelayMs?: number) {
  const clock = manualClock();
  const spawned: Array<Sandbox & { discarded: boolean }> = [];
  const warm = new WarmPool({
    size,
    maxKeys,
    maxIdleMs,
    ...(refillDelayMs === undefined ? {} : { refillDelayMs }),
    clock,
    logger: silentLogger(),
    spawn: async (runtime, limits, egress) => {
      const s = fakeSandbox(runtime, limits, clock.monotonicMs(), egress);
      spawned.push(s);
      return s;
    },
  });
  return { warm, clock, spawned };
}

describe('WarmPool', () => {
  test('the key covers every limit fixed at spawn, and not per-call ones', () => {
    assert.notEqual(poolKey('python', LIMITS), poolKey('python', { ...LIMITS, memoryMiB: 64 }));
    assert.notEqual(poolKey('python', LIMITS), poolKey('python', { ...LIMITS, pids: 8 }));
    assert.notEqual(
      poolKey('python', LIMITS),
      poolKey('python', { ...LIMITS, cpuMillicores: 500 }),
    );
    assert.notEqual(poolKey('python', LIMITS), poolKey('python', { ...LIMITS, tmpfsMiB: 4 }));
    assert.notEqual(poolKey('python', LIMITS), poolKey('node', LIMITS));
    assert.equal(poolKey('python', LIMITS), poolKey('python', { ...LIMITS, maxOutputBytes: 99 }));
    assert.notEqual(poolKey('python', LIMITS), poolKey('python', LIMITS, true));
    assert.equal(poolKey('python', LIMITS), poolKey('python', LIMITS, false));
  });

  test('egress-capable and plain sandboxes never stand in for each other', async () => {
    const { warm, spawned } = pool();
    warm.register('python', LIMITS, true);
    await warm.whenFilled();
    assert.equal(spawned.length, 1);
    assert.equal(warm.take('python', LIMITS), undefined, 'a plain call gets no egress sandbox');
    await warm.whenFilled();
    const plain = warm.take('python', LIMITS);
    assert.ok(plain !== undefined && plain.egressSocketPath === undefined);
    const egress = warm.take('python', LIMITS, true);
    assert.ok(egress?.egressSocketPath !== undefined, 'an egress call gets an egress sandbox');
    await warm.close();
  });

  test('fills a registered key up to its size', async () => {
    const { warm, spawned } = pool(2);
    warm.register('python', LIMITS);
    await warm.whenFilled();
    assert.equal(spawned.length, 2);
    assert.equal(warm.idleCount, 2);
    await warm.close();
  });

  test('hands out a sandbox only for exactly the same limits', async () => {
    const { warm } = pool();
    warm.register('python', LIMITS);
    await warm.whenFilled();
    assert.equal(warm.take('python', { ...LIMITS, memoryMiB: 512 }), undefined);
    assert.equal(warm.take('node', LIMITS), undefined);
    assert.equal(warm.take('python', LIMITS)?.limits, LIMITS);
    await warm.close();
  });

  test('each sandbox is handed out once, then refilled', async () => {
    const { warm, spawned } = pool();
    warm.register('python', LIMITS);
    await warm.whenFilled();
    const first = warm.take('python', LIMITS);
    assert.equal(warm.take('python', LIMITS), undefined);
    await warm.whenFilled();
    const second = warm.take('python', LIMITS);
    assert.ok(first && second && first !== second);
    assert.equal(spawned.length >= 2, true);
    await warm.close();
  });

  test('a take refills only once the call has its answer, not while it runs', async () => {
    const { warm, spawned } = pool(1, 60_000, 8, 60_000);
    warm.register('python', LIMITS);
    await warm.whenFilled();
    assert.ok(warm.take('python', LIMITS));
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(spawned.length, 1, 'no spawn competes with the running call');
    warm.callEnded();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(spawned.length, 1, 'not while the answer is on its way out');
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(spawned.length, 2);
    await warm.close();
  });

  test('a long call does not keep the pool empty: the refill starts after refillDelayMs', async () => {
    const { warm, spawned } = pool(1, 60_000, 8, 5);
    warm.register('python', LIMITS);
    await warm.whenFilled();
    assert.ok(warm.take('python', LIMITS));
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(spawned.length, 2);
    assert.equal(warm.idleCount, 1);
    await warm.close();
  });

  test('a sandbox idle beyond maxIdleMs is discarded, never handed out', async () => {
    const { warm, clock, spawned } = pool(1, 1000);
    warm.register('python', LIMITS);
    await warm.whenFilled();
    clock.advance(1500);
    const got = warm.take('python', LIMITS);
    assert.equal(got, undefined);
    assert.equal(spawned[0]?.discarded, true);
    await warm.close();
  });

  test('size 0 disables the pool', async () => {
    const { warm, spawned } = pool(0);
    warm.register('python', LIMITS);
    assert.equal(warm.take('python', LIMITS), undefined);
    assert.equal(spawned.length, 0);
    await warm.close();
  });

  test('beyond maxKeys the least recently used key is dropped and its sandboxes discarded', async () => {
    const { warm, clock, spawned } = pool(1, 60_000, 2);
    warm.register('python', LIMITS);
    await warm.whenFilled();
    clock.advance(1);
    warm.register('node', LIMITS);
    clock.advance(1);
    warm.register('bash', LIMITS);
    await warm.whenFilled();
    assert.equal(spawned[0]?.discarded, true);
    assert.equal(warm.take('python', LIMITS), undefined);
    await warm.close();
  });

  test('a sandbox that dies while starting is not respawned in a loop', async () => {
    const clock = manualClock();
    let spawns = 0;
    const warm = new WarmPool({
      size: 2,
      maxKeys: 8,
      maxIdleMs: 60_000,
      clock,
      logger: silentLogger(),
      spawn: async (runtime, limits) => {
        spawns += 1;
        const dead = fakeSandbox(runtime, limits, clock.monotonicMs());
        dead.discarded = true;
        return dead;
      },
    });
    warm.register('node', LIMITS);
    await warm.whenFilled();
    assert.ok(spawns <= 3, `spawned ${spawns} times`);
    assert.equal(warm.idleCount, 0);
    await warm.close();
  });

  test('close discards every idle sandbox', async () => {
    const { warm, spawned } = pool(2);
    warm.register('python', LIMITS);
    await warm.whenFilled();
    await warm.close();
    assert.ok(spawned.every((s) => s.discarded));
  });
});

import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { KubeClient } from './client.ts';
import { isConflict } from './errors.ts';
import { Resources } from './resources.ts';
import type { KubeObject } from './types.ts';

export interface LeaseObject extends KubeObject {
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  client: KubeClient;
  clock: Clock;
  logger: Logger;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  /** How often the leader renews and a candidate retries. */
  retryPeriodMs?: number;
  /** A leader that has not renewed for this long steps down. */
  renewDeadlineMs?: number;
}

export interface LeaderElector {
  /** Resolves once this process holds the lease (or rejects when stopped first). */
  run(): Promise<void>;
  isLeader(): boolean;
  /** Called once if leadership is lost after it was acquired. */
  onLost(fn: () => void): void;
  /** Stops renewing and, when leader, releases the lease so a standby takes over at once. */
  release(): Promise<void>;
}

/** Lease times are metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Pure: may `identity` take `lease` at `now`? Returns the reason either way, for logs. */
export function canAcquire(
  lease: LeaseObject,
  identity: string,
  now: Date,
): { ok: boolean; reason: string } {
  const holder = lease.spec?.holderIdentity ?? '';
  if (holder === '' || holder === identity)
    return { ok: true, reason: holder ? 'held by us' : 'released' };
  const renewed = Date.parse(lease.spec?.renewTime ?? lease.spec?.acquireTime ?? '');
  const duration = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
  if (Number.isNaN(renewed) || renewed + duration < now.getTime())
    return { ok: true, reason: `expired (was ${holder})` };
  return { ok: false, reason: `held by ${holder}` };
}

/**
 * Leader election on a coordination.k8s.io Lease with optimistic concurrency (PUT with the read
 * resourceVersion), the same protocol as client-go's leaderelection so the two interoperate.
 */
export function createLeaderElector(options: LeaderElectionOptions): LeaderElector {
  const { client, clock, namespace, name, identity } = options;
  const log = options.logger.child({ lease: `${namespace}/${name}`, identity });
  const leaseDurationSeconds = options.leaseDurationSeconds ?? 15;
  const retryPeriodMs = options.retryPeriodMs ?? 2_000;
  const renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
  let leader = false;
  let stopped = false;
  let lastRenew = 0;
  let timer: NodeJS.Timeout | undefined;
  const lostHandlers: (() => void)[] = [];
  let wake: (() => void) | undefined;

  async function tryAcquireOrRenew(): Promise<boolean> {
    const now = clock.now();
    const existing = await client.get<LeaseObject>(Resources.Lease, name, namespace);
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: microTime(now),
    };
    if (!existing) {
      try {
        await client.create(Resources.Lease, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      } catch (error) {
        if (isConflict(error)) return false;
        throw error;
      }
    }
    const verdict = canAcquire(existing, identity, now);
    if (!verdict.ok) {
      log.debug({ reason: verdict.reason }, 'lease not available');
      return false;
    }
    const takingOver = existing.spec?.holderIdentity !== identity;
    const next: LeaseObject = {
      ...existing,
      spec: {
        ...existing.spec,
        ...spec,
        acquireTime: takingOver ? microTime(now) : (existing.spec?.acquireTime ?? microTime(now)),
        leaseTransitions:
          (existing.spec?.leaseTransitions ?? 0) +
          (takingOver && existing.spec?.holderIdentity ? 1 : 0),
      },
    };
    try {
      await client.update(Resources.Lease, next);
      if (takingOver) log.info({ reason: verdict.reason }, 'acquired lease');
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
    });

  const stepDown = (why: string) => {
    leader = false;
    log.error({ why }, 'lost leadership');
    for (const fn of lostHandlers) fn();
  };

  async function renewLoop(): Promise<void> {
    while (!stopped && leader) {
      await sleep(retryPeriodMs);
      if (stopped) return;
      try {
        if (await tryAcquireOrRenew()) {
          lastRenew = clock.monotonicMs();
          continue;
        }
        return stepDown('another holder took the lease');
      } catch (error) {
        log.warn({ err: error }, 'lease renewal failed');
        if (clock.monotonicMs() - lastRenew > renewDeadlineMs)
          return stepDown('renew deadline passed');
      }
    }
  }

  return {
    async run() {
      while (!stopped) {
        try {
          if (await tryAcquireOrRenew()) {
            leader = true;
            lastRenew = clock.monotonicMs();
            void renewLoop();
            return;
          }
        } catch (error) {
          log.warn({ err: error }, 'lease acquisition failed');
        }
        await sleep(retryPeriodMs);
      }
      throw new Error('leader election stopped before the lease was acquired');
    },
    isLeader: () => leader,
    onLost(fn) {
      lostHandlers.push(fn);
    },
    async release() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      if (!leader) return;
      leader = false;
      try {
        const existing = await client.get<LeaseObject>(Resources.Lease, name, namespace);
        if (existing?.spec?.holderIdentity !== identity) return;
        await client.update(Resources.Lease, {
          ...existing,
          spec: {
            ...existing.spec,
            holderIdentity: null,
            leaseDurationSeconds: 1,
            renewTime: microTime(clock.now()),
          },
        });
        log.info('released lease');
      } catch (error) {
        log.warn({ err: error }, 'lease release failed');
      }
    },
  };
}

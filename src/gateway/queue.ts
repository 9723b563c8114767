/**
 * Fair backpressure in front of an executor (ADR docs/adr/0017-fair-queue.md). At most
 * `maxConcurrent` calls run at once; beyond that a call waits (bounded in number and time) and
 * is answered `overloaded` without being started past a bound. A call is never retried: the
 * executor sees each request at most once.
 *
 * Fairness has two levels: servers (`request.server`; in `mcpworks serve` one queue serves every
 * McpServer) and, within a server, callers (`request.caller`, the principal's `kind:name`). Each
 * caller may hold at most `maxConcurrentPerPrincipal` running and `maxQueuedPerPrincipal` waiting
 * calls, each server `maxConcurrentPerServer` / `maxQueuedPerServer`. When a slot frees, it goes
 * to the server with the fewest running calls among those with a waiting call that may start
 * (ties: the one served least recently), then likewise to one of that server's callers, and to
 * that caller's oldest waiting call. With equal shares that is round-robin; and a newcomer has
 * fewer running calls than a caller holding slots, so a caller with 200 waiting calls delays
 * another caller's first call by at most one slot release, and a server with many callers does
 * not take another server's turn.
 *
 * Invariant: after every change, no waiting call could start (dispatch runs until none can), so a
 * new call that may start at once does not overtake anyone eligible.
 */
import { describeCaller } from './auth/principal.ts';
import {
  RefusalReason,
  type ToolCallRequest,
  type ToolCallResult,
  type ToolExecutor,
} from '../executor/types.ts';

export interface FairQueueLimits {
  /** Calls running at once, across all servers and callers. */
  maxConcurrent: number;
  /** Calls waiting at once, across all servers and callers. */
  maxQueued: number;
  /** The longest a call waits for a slot before it is refused. */
  maxWaitMs: number;
  /** Default `fairShare(maxConcurrent)`: one caller never takes every slot (unless there is one). */
  maxConcurrentPerPrincipal?: number;
  /** Default `min(maxQueued, 4 × maxConcurrentPerPrincipal)`. */
  maxQueuedPerPrincipal?: number;
  /** Default `maxConcurrent` (no cap beyond the total); `mcpworks serve` with several servers sets a share. */
  maxConcurrentPerServer?: number;
  /** Default `maxQueued`. */
  maxQueuedPerServer?: number;
}

export type ResolvedLimits = Required<FairQueueLimits>;

/** Timers as a dependency, so tests drive the wait limit without sleeping. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface QueueStats {
  running: number;
  waiting: number;
  /** Per server (`namespace/name`) that has had a call; bounded by configuration. */
  servers: { server: string; running: number; waiting: number }[];
}

export interface FairQueue extends ToolExecutor {
  readonly limits: ResolvedLimits;
  stats(): QueueStats;
  /** New limits (a configuration change); waiting calls are kept, and may start at once. */
  configure(limits: FairQueueLimits): void;
}

/** The default share of `n` slots one caller (or server) may hold: half, rounded up, at least 1. */
export function fairShare(n: number): number {
  return Math.max(1, Math.ceil(n / 2));
}

/** Fills in the defaults and checks every limit; a bad one is a RangeError naming it. */
export function resolveLimits(limits: FairQueueLimits): ResolvedLimits {
  const { maxConcurrent, maxQueued, maxWaitMs } = limits;
  const perPrincipal = limits.maxConcurrentPerPrincipal ?? fairShare(maxConcurrent);
  const resolved: ResolvedLimits = {
    maxConcurrent,
    maxQueued,
    maxWaitMs,
    maxConcurrentPerPrincipal: perPrincipal,
    maxQueuedPerPrincipal: limits.maxQueuedPerPrincipal ?? Math.min(maxQueued, 4 * perPrincipal),
    maxConcurrentPerServer: limits.maxConcurrentPerServer ?? maxConcurrent,
    maxQueuedPerServer: limits.maxQueuedPerServer ?? maxQueued,
  };
  for (const [name, value] of Object.entries(resolved)) {
    const min = name.startsWith('maxConcurrent') ? 1 : 0;
    if (!(Number.isInteger(value) && value >= min)) {
      throw new RangeError(`fair queue: ${name} must be an integer >= ${min}, got ${value}`);
    }
  }
  return resolved;
}

interface Flow {
  readonly key: string;
  running: number;
  /** When it last got a slot (a grant counter; 0: never). */
  lastGrant: number;
  readonly waiters: Waiter[];
}

interface Group {
  readonly key: string;
  running: number;
  lastGrant: number;
  waiting: number;
  readonly flows: Map<string, Flow>;
  /** Flows with waiters, in the order they started waiting. */
  readonly active: Map<string, Flow>;
}

interface Waiter {
  readonly flow: Flow;
  readonly group: Group;
  /** Settles the wait: true when granted a slot, or the refusal. */
  settle(outcome: true | ToolCallResult): void;
}

function refused(message: string, refusal?: RefusalReason): ToolCallResult {
  return {
    outcome: 'overloaded',
    isError: true,
    content: [{ type: 'text', text: message }],
    durationMs: 0,
    outputBytes: 0,
    executor: 'gateway-queue',
    message,
    ...(refusal === undefined ? {} : { refusal }),
  };
}

function calls(n: number): string {
  return n === 1 ? '1 call' : `${n} calls`;
}

function seconds(ms: number): string {
  return String(Math.round(ms) / 1000);
}

export function withFairQueue(
  executor: ToolExecutor,
  options: FairQueueLimits & { timers?: Timers },
): FairQueue {
  let limits = resolveLimits(options);
  const timers = options.timers ?? systemTimers;
  const groups = new Map<string, Group>();
  /** Groups with waiters, in the order they started waiting. */
  const active = new Map<string, Group>();
  let running = 0;
  let waiting = 0;

  const groupFor = (key: string): Group => {
    let group = groups.get(key);
    if (group === undefined) {
      group = { key, running: 0, lastGrant: 0, waiting: 0, flows: new Map(), active: new Map() };
      groups.set(key, group);
    }
    return group;
  };
  const flowFor = (group: Group, key: string): Flow => {
    let flow = group.flows.get(key);
    if (flow === undefined) {
      flow = { key, running: 0, lastGrant: 0, waiters: [] };
      group.flows.set(key, flow);
    }
    return flow;
  };
  // Callers come and go: a flow exists only while it has a call running or waiting.
  const dropIfIdle = (group: Group, flow: Flow) => {
    if (flow.running === 0 && flow.waiters.length === 0) group.flows.delete(flow.key);
  };

  const canStart = (group: Group, flow: Flow) =>
    running < limits.maxConcurrent &&
    group.running < limits.maxConcurrentPerServer &&
    flow.running < limits.maxConcurrentPerPrincipal;

  let grants = 0;
  const take = (group: Group, flow: Flow) => {
    running += 1;
    group.running += 1;
    flow.running += 1;
    grants += 1;
    group.lastGrant = grants;
    flow.lastGrant = grants;
  };

  const removeWaiter = (waiter: Waiter): boolean => {
    const { group, flow } = waiter;
    const at = flow.waiters.indexOf(waiter);
    if (at === -1) return false;
    flow.waiters.splice(at, 1);
    group.waiting -= 1;
    waiting -= 1;
    if (flow.waiters.length === 0) group.active.delete(flow.key);
    if (group.waiting === 0) active.delete(group.key);
    return true;
  };

  /** The flow with the fewest running calls, least recently served first (ties: longest waiting). */
  const leastServed = <T extends { running: number; lastGrant: number }>(
    candidates: Iterable<T>,
    eligible: (candidate: T) => boolean,
  ): T | undefined => {
    let best: T | undefined;
    for (const c of candidates) {
      if (!eligible(c)) continue;
      if (
        best === undefined ||
        c.running < best.running ||
        (c.running === best.running && c.lastGrant < best.lastGrant)
      )
        best = c;
    }
    return best;
  };

  /** The next waiter to start: the least served server, then its least served caller. */
  const next = (): Waiter | undefined => {
    const flowOf = (group: Group) =>
      leastServed(group.active.values(), (f) => f.running < limits.maxConcurrentPerPrincipal);
    const group = leastServed(
      active.values(),
      (g) => g.running < limits.maxConcurrentPerServer && flowOf(g) !== undefined,
    );
    if (group === undefined) return undefined;
    const waiter = flowOf(group)!.waiters[0]!;
    removeWaiter(waiter);
    return waiter;
  };

  const dispatch = () => {
    while (running < limits.maxConcurrent) {
      const waiter = next();
      if (waiter === undefined) return;
      take(waiter.group, waiter.flow);
      waiter.settle(true);
    }
  };

  const release = (group: Group, flow: Flow) => {
    running -= 1;
    group.running -= 1;
    flow.running -= 1;
    dropIfIdle(group, flow);
    dispatch();
  };

  /** Why a call that cannot start now may not wait either; undefined when it may wait. */
  const refusalFor = (group: Group, flow: Flow, caller: string): ToolCallResult | undefined => {
    const l = limits;
    if (flow.waiters.length >= l.maxQueuedPerPrincipal) {
      return refused(
        `${describeCaller(caller)} already has ${calls(flow.running)} running and ${flow.waiters.length} waiting ` +
          `(limit per agent: ${l.maxConcurrentPerPrincipal} running, ${l.maxQueuedPerPrincipal} waiting); try again later`,
        RefusalReason.PrincipalShare,
      );
    }
    if (waiting >= l.maxQueued) {
      return refused(
        `the sandbox is busy: ${calls(running)} running, ${waiting} waiting ` +
          `(limit: ${l.maxConcurrent} running, ${l.maxQueued} waiting); try again later`,
        RefusalReason.QueueFull,
      );
    }
    if (group.waiting >= l.maxQueuedPerServer) {
      return refused(
        `server ${group.key} already has ${calls(group.running)} running and ${group.waiting} waiting ` +
          `(limit per server: ${l.maxConcurrentPerServer} running, ${l.maxQueuedPerServer} waiting); try again later`,
        RefusalReason.ServerShare,
      );
    }
    return undefined;
  };

  const wait = (group: Group, flow: Flow, signal?: AbortSignal): Promise<true | ToolCallResult> =>
    new Promise((resolve) => {
      const waitMs = limits.maxWaitMs;
      const waiter: Waiter = {
        flow,
        group,
        settle: (outcome) => {
          timers.clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(outcome);
        },
      };
      const timer = timers.setTimeout(() => {
        if (!removeWaiter(waiter)) return;
        dropIfIdle(group, flow);
        waiter.settle(
          refused(
            `waited ${seconds(waitMs)} s for a sandbox, the longest a call may wait; try again later`,
            RefusalReason.WaitTimeout,
          ),
        );
      }, waitMs);
      const onAbort = () => {
        if (!removeWaiter(waiter)) return;
        dropIfIdle(group, flow);
        waiter.settle(refused('the call was cancelled while it waited for a sandbox'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      flow.waiters.push(waiter);
      group.waiting += 1;
      waiting += 1;
      if (!group.active.has(flow.key)) group.active.set(flow.key, flow);
      if (!active.has(group.key)) active.set(group.key, group);
    });

  return {
    get limits() {
      return limits;
    },
    stats() {
      return {
        running,
        waiting,
        servers: [...groups.values()].map((g) => ({
          server: g.key,
          running: g.running,
          waiting: g.waiting,
        })),
      };
    },
    configure(next) {
      limits = resolveLimits(next);
      dispatch();
    },
    async execute(request: ToolCallRequest, signal?: AbortSignal) {
      if (signal?.aborted) return refused('the call was cancelled before it started');
      const group = groupFor(`${request.server.namespace}/${request.server.name}`);
      const flow = flowFor(group, request.caller);
      if (canStart(group, flow)) {
        take(group, flow);
      } else {
        const refusal = refusalFor(group, flow, request.caller);
        if (refusal !== undefined) {
          dropIfIdle(group, flow);
          return refusal;
        }
        const granted = await wait(group, flow, signal);
        if (granted !== true) return granted;
      }
      try {
        return await executor.execute(request, signal);
      } finally {
        release(group, flow);
      }
    },
    close: () => executor.close(),
  };
}

/**
 * Kubernetes Events for denials and failures, aggregated and rate-limited so that a busy (or
 * hostile) agent cannot flood the API server: observations with the same (object, reason) inside
 * one window become one Event with a count, and a token bucket bounds the Events written per
 * minute across all keys. What does not fit is dropped and counted, never queued without bound.
 */
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';

export interface ObjectReference {
  apiVersion: string;
  kind: string;
  name: string;
  /** Absent for cluster-scoped objects (ClusterAgentPolicy). */
  namespace?: string;
  uid?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventObservation {
  regarding: ObjectReference;
  type: EventType;
  /** UpperCamelCase, from a closed set (e.g. ToolCallDenied, ToolCallFailed). */
  reason: string;
  /** Human text; never a token or raw arguments. */
  message: string;
}

export interface AggregatedEvent extends EventObservation {
  count: number;
  firstTimestamp: Date;
  lastTimestamp: Date;
}

/** Writes one Event; the Kubernetes implementation is in ./kube-events.ts. */
export interface EventPublisher {
  publish(event: AggregatedEvent): Promise<void>;
}

export interface EventSink {
  observe(observation: EventObservation): void;
  /** Publishes every aggregate whose window has ended (all of them when `all`). */
  flush(all?: boolean): Promise<void>;
  /** Counters for tests and logs. */
  stats(): { published: number; dropped: number; pending: number };
}

export interface EventAggregatorOptions {
  publisher: EventPublisher;
  clock: Clock;
  logger?: Logger;
  /** Observations of one (object, reason) within this window are one Event; default 60 s. */
  windowMs?: number;
  /** Token bucket: Events that may be written at once; default 10. */
  burst?: number;
  /** Token bucket: Events per minute in the long run; default 12. */
  perMinute?: number;
  /** Distinct (object, reason) keys held at once; beyond it observations are dropped. Default 256. */
  maxKeys?: number;
}

interface Pending {
  event: AggregatedEvent;
  /** Monotonic time of the first observation. */
  startedMs: number;
}

function keyOf(o: EventObservation): string {
  const r = o.regarding;
  return [r.apiVersion, r.kind, r.namespace ?? '', r.name, o.type, o.reason].join('\u0000');
}

export function createEventAggregator(options: EventAggregatorOptions): EventSink {
  const windowMs = options.windowMs ?? 60_000;
  const burst = options.burst ?? 10;
  const perMs = (options.perMinute ?? 12) / 60_000;
  const maxKeys = options.maxKeys ?? 256;
  if (!(windowMs > 0 && burst >= 1 && perMs > 0 && maxKeys >= 1)) {
    throw new RangeError(
      'event aggregator: windowMs, burst, perMinute and maxKeys must be positive',
    );
  }
  const { clock, publisher, logger } = options;
  const pending = new Map<string, Pending>();
  let tokens = burst;
  let refilledAt = clock.monotonicMs();
  let published = 0;
  let dropped = 0;

  const takeToken = (): boolean => {
    const now = clock.monotonicMs();
    tokens = Math.min(burst, tokens + (now - refilledAt) * perMs);
    refilledAt = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };

  return {
    observe(observation) {
      const key = keyOf(observation);
      const now = clock.now();
      const existing = pending.get(key);
      if (existing !== undefined) {
        existing.event.count += 1;
        existing.event.lastTimestamp = now;
        existing.event.message = observation.message;
        return;
      }
      if (pending.size >= maxKeys) {
        dropped += 1;
        return;
      }
      pending.set(key, {
        startedMs: clock.monotonicMs(),
        event: { ...observation, count: 1, firstTimestamp: now, lastTimestamp: now },
      });
    },
    async flush(all = false) {
      const now = clock.monotonicMs();
      const due: AggregatedEvent[] = [];
      for (const [key, entry] of pending) {
        if (!all && now - entry.startedMs < windowMs) continue;
        pending.delete(key);
        if (takeToken()) due.push(entry.event);
        else dropped += entry.event.count;
      }
      for (const event of due) {
        try {
          await publisher.publish(event);
          published += 1;
        } catch (error) {
          dropped += event.count;
          logger?.warn({ err: error, reason: event.reason }, 'could not write a Kubernetes Event');
        }
      }
    },
    stats: () => ({ published, dropped, pending: pending.size }),
  };
}

/** Runs `sink.flush()` every `intervalMs` until the returned stop function is called. */
export function startEventFlusher(sink: EventSink, intervalMs = 5_000): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(() => sink.flush());
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
    await sink.flush(true);
  };
}

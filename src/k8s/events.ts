import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { KubeClient } from './client.ts';
import { Resources } from './resources.ts';
import type { KubeObject } from './types.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  /** Records an Event on `regarding`; the same (object, reason, message) is sent once per window. */
  record(regarding: KubeObject, type: EventType, reason: string, message: string): void;
}

export interface EventRecorderOptions {
  client: KubeClient;
  clock: Clock;
  logger: Logger;
  component: string;
  /** Repeats of one event inside this window are dropped (default 10 minutes). */
  dedupeWindowMs?: number;
  /** At most this many Events per window per process, whatever their content. */
  maxPerWindow?: number;
}

/**
 * core/v1 Events, deduplicated and rate-limited so that a failing reconcile loop or a busy
 * agent cannot flood the API server. Sending is fire-and-forget: an Event that cannot be
 * written is logged, never fails the caller.
 */
export function createEventRecorder(options: EventRecorderOptions): EventRecorder {
  const window = options.dedupeWindowMs ?? 600_000;
  const maxPerWindow = options.maxPerWindow ?? 500;
  const seen = new Map<string, number>();
  let windowStart = options.clock.monotonicMs();
  let sentInWindow = 0;
  return {
    record(regarding, type, reason, message) {
      const now = options.clock.monotonicMs();
      if (now - windowStart > window) {
        windowStart = now;
        sentInWindow = 0;
        for (const [k, at] of seen) if (now - at > window) seen.delete(k);
      }
      const meta = regarding.metadata ?? {};
      const key = `${regarding.kind}/${meta.namespace ?? ''}/${meta.name ?? ''}/${reason}/${message}`;
      const last = seen.get(key);
      if (last !== undefined && now - last < window) return;
      if (sentInWindow >= maxPerWindow) return;
      seen.set(key, now);
      sentInWindow++;
      const timestamp = options.clock
        .now()
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z');
      const namespace = meta.namespace ?? 'default';
      const body: KubeObject = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${meta.name ?? 'object'}.`, namespace },
        involvedObject: {
          apiVersion: regarding.apiVersion,
          kind: regarding.kind,
          name: meta.name,
          namespace: meta.namespace,
          uid: meta.uid,
          resourceVersion: meta.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: options.component },
        reportingComponent: options.component,
        reportingInstance: options.component,
        firstTimestamp: timestamp,
        lastTimestamp: timestamp,
        count: 1,
      };
      options.client.create(Resources.Event, body).catch((error: unknown) => {
        options.logger.warn({ err: error, reason }, 'could not record event');
      });
    },
  };
}

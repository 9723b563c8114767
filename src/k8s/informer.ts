import type { Logger } from '../shared/logger.ts';
import type { KubeClient, ListOptions } from './client.ts';
import { httpStatusOf } from './errors.ts';
import type { ResourceType } from './resources.ts';
import { objectKey, type KubeObject } from './types.ts';

export type InformerEventType = 'added' | 'modified' | 'deleted';
/**
 * `obj` is the version the event carries; `get` may return a newer one that this process wrote
 * and `observe`d.
 */
export type InformerHandler<T extends KubeObject> = (
  type: InformerEventType,
  obj: T,
  old?: T,
) => void;

/**
 * A list-then-watch cache of one resource type, optionally scoped by namespace and label
 * selector. Restarts the watch when it ends or fails (with capped backoff) and relists from
 * scratch when the resourceVersion is gone (410), so the cache never silently stops.
 */
export interface Informer<T extends KubeObject> {
  start(): void;
  stop(): Promise<void>;
  /** Resolves once the first list has filled the cache. */
  synced(): Promise<void>;
  hasSynced(): boolean;
  get(key: string): T | undefined;
  list(): T[];
  on(handler: InformerHandler<T>): void;
  /**
   * Puts an object the caller just wrote into the cache when it is newer than the cached one,
   * so the next reconcile compares against it before the watch event arrives. Emits nothing.
   */
  observe(obj: T): void;
}

export interface InformerOptions extends ListOptions {
  logger: Logger;
  /** Caps the restart backoff (ms). */
  maxBackoffMs?: number;
  /** Server-side watch timeout; a shorter one in tests exercises the re-watch path. */
  watchTimeoutSeconds?: number;
  /** Drops fields the cache does not need (e.g. managedFields) to keep memory low. */
  transform?: (obj: KubeObject) => KubeObject;
}

export function createInformer<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  options: InformerOptions,
): Informer<T> {
  const cache = new Map<string, T>();
  const handlers: InformerHandler<T>[] = [];
  const log = options.logger.child({ informer: type.plural, labelSelector: options.labelSelector });
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const transform = (obj: T): T =>
    options.transform ? (options.transform(obj) as T) : stripManagedFields(obj);
  let abort = new AbortController();
  let running: Promise<void> | undefined;
  let isSynced = false;
  let resolveSynced: () => void = () => {};
  const syncedPromise = new Promise<void>((r) => (resolveSynced = r));

  const emit = (event: InformerEventType, obj: T, old?: T) => {
    for (const h of handlers) {
      try {
        h(event, obj, old);
      } catch (error) {
        log.error({ err: error }, 'informer handler failed');
      }
    }
  };

  async function relist(): Promise<string> {
    const result = await client.list<T>(type, options);
    const seen = new Set<string>();
    for (const raw of result.items) {
      const obj = transform(raw);
      const key = objectKey(obj);
      seen.add(key);
      const old = cache.get(key);
      cache.set(key, obj);
      if (!old) emit('added', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        emit('modified', obj, old);
    }
    for (const [key, old] of cache) {
      if (!seen.has(key)) {
        cache.delete(key);
        emit('deleted', old);
      }
    }
    if (!isSynced) {
      isSynced = true;
      resolveSynced();
    }
    return result.resourceVersion;
  }

  async function loop(signal: AbortSignal): Promise<void> {
    let backoff = 200;
    let resourceVersion: string | undefined;
    while (!signal.aborted) {
      try {
        resourceVersion ??= await relist();
        await client.watch<T>(
          type,
          {
            ...options,
            resourceVersion,
            signal,
            timeoutSeconds: options.watchTimeoutSeconds ?? 300,
          },
          (event) => {
            if (event.type === 'BOOKMARK') {
              resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
              return;
            }
            const obj = transform(event.object);
            resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
            const key = objectKey(obj);
            const old = cache.get(key);
            if (event.type === 'DELETED') {
              cache.delete(key);
              emit('deleted', obj);
            } else {
              // observe() may already hold a newer version written by this process: the cache
              // keeps it, the handlers see the version this event carries (so that they can tell
              // the echo of a write from an earlier change of someone else).
              const newer =
                old &&
                Number(old.metadata?.resourceVersion ?? 0) >
                  Number(obj.metadata?.resourceVersion ?? 0);
              if (!newer) cache.set(key, obj);
              emit(old ? 'modified' : 'added', obj, old);
            }
          },
        );
        backoff = 200;
      } catch (error) {
        if (signal.aborted) return;
        if (httpStatusOf(error) === 410) {
          log.debug('watch expired, relisting');
          resourceVersion = undefined;
          continue;
        }
        log.warn({ err: error, backoffMs: backoff }, 'watch failed, restarting');
        resourceVersion = undefined;
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  }

  return {
    start() {
      if (running) return;
      abort = new AbortController();
      running = loop(abort.signal);
    },
    async stop() {
      abort.abort();
      await running;
      running = undefined;
    },
    synced: () => syncedPromise,
    hasSynced: () => isSynced,
    get: (key) => cache.get(key),
    list: () => [...cache.values()],
    on(handler) {
      handlers.push(handler);
    },
    observe(raw) {
      const obj = transform(raw);
      const key = objectKey(obj);
      const cached = cache.get(key);
      if (
        !cached ||
        Number(obj.metadata?.resourceVersion ?? 0) > Number(cached.metadata?.resourceVersion ?? 0)
      ) {
        cache.set(key, obj);
      }
    },
  };
}

function stripManagedFields<T extends KubeObject>(obj: T): T {
  if (obj.metadata && 'managedFields' in obj.metadata) {
    const { managedFields: _dropped, ...metadata } = obj.metadata;
    return { ...obj, metadata };
  }
  return obj;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

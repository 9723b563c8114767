/**
 * A work queue with client-go's guarantees: a key is queued at most once, never processed by
 * two workers at once (a key added while it is processed is re-queued after), failures come
 * back with per-key exponential backoff, and at most `concurrency` keys run at a time.
 * Every add names its trigger; a key's reconcile is attributed to the first trigger that queued
 * it (later adds of a queued key coalesce into that one reconcile), for the metrics.
 */
export interface WorkQueueOptions {
  concurrency: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Reports the number of keys waiting (not processing, not delayed). */
  onDepth?: (depth: number) => void;
}

export type ProcessResult = { requeueAfterMs?: number } | void;

/** Retries of a failed key and `requeueAfterMs` results are queued with this trigger. */
export const REQUEUE_TRIGGER = 'requeue';

export interface WorkQueue {
  add(key: string, trigger?: string): void;
  addAfter(key: string, delayMs: number, trigger?: string): void;
  /**
   * Starts `concurrency` workers calling `process` with the key and the trigger that queued it;
   * a thrown error requeues with backoff.
   */
  start(
    process: (key: string, trigger: string) => Promise<ProcessResult>,
    onError: (key: string, error: unknown) => void,
  ): void;
  /** Stops taking keys and waits for the running ones to finish. */
  shutdown(): Promise<void>;
  depth(): number;
  /** Resolves when nothing is queued or processing (delayed keys excluded); for tests and benches. */
  idle(): Promise<void>;
}

export function createWorkQueue(options: WorkQueueOptions): WorkQueue {
  const base = options.baseDelayMs ?? 100;
  const max = options.maxDelayMs ?? 60_000;
  const queue: string[] = [];
  const queued = new Set<string>();
  const processing = new Set<string>();
  /** Keys added while processing, with the trigger of the first such add. */
  const dirty = new Map<string, string>();
  /** The trigger of each queued key. */
  const triggers = new Map<string, string>();
  const failures = new Map<string, number>();
  const timers = new Map<string, NodeJS.Timeout>();
  let processFn: ((key: string, trigger: string) => Promise<ProcessResult>) | undefined;
  let errorFn: (key: string, error: unknown) => void = () => {};
  let active = 0;
  let stopped = false;
  const running = new Set<Promise<void>>();
  let idleWaiters: (() => void)[] = [];

  const report = () => options.onDepth?.(queue.length);
  const checkIdle = () => {
    if (queue.length === 0 && processing.size === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  };

  function add(key: string, trigger = 'unspecified'): void {
    if (stopped) return;
    if (processing.has(key)) {
      if (!dirty.has(key)) dirty.set(key, trigger);
      return;
    }
    if (queued.has(key)) return;
    queued.add(key);
    triggers.set(key, trigger);
    queue.push(key);
    report();
    pump();
  }

  function addAfter(key: string, delayMs: number, trigger = REQUEUE_TRIGGER): void {
    if (stopped) return;
    if (delayMs <= 0) return add(key, trigger);
    const existing = timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => {
      timers.delete(key);
      add(key, trigger);
    }, delayMs);
    timer.unref();
    timers.set(key, timer);
  }

  function pump(): void {
    while (processFn && !stopped && active < options.concurrency && queue.length > 0) {
      const key = queue.shift() as string;
      queued.delete(key);
      const trigger = triggers.get(key) ?? 'unspecified';
      triggers.delete(key);
      processing.add(key);
      active++;
      report();
      const task = runOne(key, trigger);
      running.add(task);
      void task.finally(() => running.delete(task));
    }
  }

  async function runOne(key: string, trigger: string): Promise<void> {
    try {
      const result = await (processFn as (key: string, trigger: string) => Promise<ProcessResult>)(
        key,
        trigger,
      );
      failures.delete(key);
      if (result && result.requeueAfterMs !== undefined) addAfter(key, result.requeueAfterMs);
    } catch (error) {
      const count = (failures.get(key) ?? 0) + 1;
      failures.set(key, count);
      errorFn(key, error);
      addAfter(key, backoffDelay(count, base, max));
    } finally {
      processing.delete(key);
      active--;
      const again = dirty.get(key);
      if (again !== undefined) {
        dirty.delete(key);
        add(key, again);
      }
      pump();
      checkIdle();
    }
  }

  return {
    add,
    addAfter,
    start(process, onError) {
      processFn = process;
      errorFn = onError;
      pump();
    },
    async shutdown() {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await Promise.allSettled([...running]);
    },
    depth: () => queue.length,
    idle() {
      if (queue.length === 0 && processing.size === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}

/** Backoff for the n-th consecutive failure (1-based); exported for tests and docs. */
export function backoffDelay(failures: number, baseDelayMs = 100, maxDelayMs = 60_000): number {
  return Math.min(maxDelayMs, baseDelayMs * 2 ** (failures - 1));
}

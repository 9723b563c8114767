/**
 * A work queue with client-go's guarantees: a key is queued at most once, never processed by
 * two workers at once (a key added while it is processed is re-queued after), failures come
 * back with per-key exponential backoff, and at most `concurrency` keys run at a time.
 */
export interface WorkQueueOptions {
  concurrency: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Reports the number of keys waiting (not processing, not delayed). */
  onDepth?: (depth: number) => void;
}

export type ProcessResult = { requeueAfterMs?: number } | void;

export interface WorkQueue {
  add(key: string): void;
  addAfter(key: string, delayMs: number): void;
  /** Starts `concurrency` workers calling `process`; a thrown error requeues with backoff. */
  start(
    process: (key: string) => Promise<ProcessResult>,
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
  const dirty = new Set<string>();
  const failures = new Map<string, number>();
  const timers = new Map<string, NodeJS.Timeout>();
  let processFn: ((key: string) => Promise<ProcessResult>) | undefined;
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

  function add(key: string): void {
    if (stopped) return;
    if (processing.has(key)) {
      dirty.add(key);
      return;
    }
    if (queued.has(key)) return;
    queued.add(key);
    queue.push(key);
    report();
    pump();
  }

  function addAfter(key: string, delayMs: number): void {
    if (stopped) return;
    if (delayMs <= 0) return add(key);
    const existing = timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => {
      timers.delete(key);
      add(key);
    }, delayMs);
    timer.unref();
    timers.set(key, timer);
  }

  function pump(): void {
    while (processFn && !stopped && active < options.concurrency && queue.length > 0) {
      const key = queue.shift() as string;
      queued.delete(key);
      processing.add(key);
      active++;
      report();
      const task = runOne(key);
      running.add(task);
      void task.finally(() => running.delete(task));
    }
  }

  async function runOne(key: string): Promise<void> {
    try {
      const result = await (processFn as (key: string) => Promise<ProcessResult>)(key);
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
      if (dirty.delete(key)) add(key);
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

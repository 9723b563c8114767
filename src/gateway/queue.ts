/**
 * Backpressure in front of an executor: at most `maxConcurrent` calls run at once, up to
 * `maxQueued` wait (FIFO) for at most `maxWaitMs`; beyond that a call is answered `overloaded`
 * at once, without starting it, so a burst becomes latency first and refusals only past a
 * bound. A call is never retried: the executor sees each request at most once.
 */
import type { ToolCallRequest, ToolCallResult, ToolExecutor } from '../executor/types.ts';

export interface QueueOptions {
  maxConcurrent: number;
  maxQueued: number;
  maxWaitMs: number;
}

interface Waiter {
  grant: () => void;
  timer: NodeJS.Timeout;
}

function overloaded(message: string): ToolCallResult {
  return {
    outcome: 'overloaded',
    isError: true,
    content: [{ type: 'text', text: message }],
    durationMs: 0,
    outputBytes: 0,
    executor: 'gateway-queue',
    message,
  };
}

export function withQueue(
  executor: ToolExecutor,
  options: QueueOptions,
): ToolExecutor & { readonly waiting: number } {
  const { maxConcurrent, maxQueued, maxWaitMs } = options;
  if (!(maxConcurrent >= 1 && maxQueued >= 0 && maxWaitMs >= 0)) {
    throw new RangeError(
      'withQueue: maxConcurrent >= 1, maxQueued >= 0 and maxWaitMs >= 0 are required',
    );
  }
  let running = 0;
  const queue: Waiter[] = [];

  const release = () => {
    const next = queue.shift();
    if (next === undefined) {
      running -= 1;
      return;
    }
    clearTimeout(next.timer);
    next.grant();
  };

  /** Resolves true with a slot, false when the wait timed out or was aborted. */
  const acquire = (signal?: AbortSignal): Promise<boolean> => {
    if (running < maxConcurrent) {
      running += 1;
      return Promise.resolve(true);
    }
    if (queue.length >= maxQueued) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(true);
        },
        timer: setTimeout(() => {
          remove();
          resolve(false);
        }, maxWaitMs),
      };
      const remove = () => {
        const at = queue.indexOf(waiter);
        if (at !== -1) queue.splice(at, 1);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        clearTimeout(waiter.timer);
        remove();
        resolve(false);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
    });
  };

  return {
    get waiting() {
      return queue.length;
    },
    async execute(request: ToolCallRequest, signal?: AbortSignal) {
      if (!(await acquire(signal))) {
        return overloaded(
          'the sandbox is busy: too many calls are running or waiting; try again later',
        );
      }
      try {
        return await executor.execute(request, signal);
      } finally {
        release();
      }
    },
    close: () => executor.close(),
  };
}

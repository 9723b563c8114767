// Polling for tests against real components, where there is no fake clock to advance.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Calls `fn` every `intervalMs` until it returns something other than undefined and returns
 * that; throws naming `what` after `timeoutMs`. Errors thrown by `fn` propagate at once.
 */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  { timeoutMs = 60_000, intervalMs = 200 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Time as a dependency, so pure code and tests never read the real clock. */
export interface Clock {
  now(): Date;
  /** Monotonic milliseconds, for durations. */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => performance.now(),
};

/** A clock that only moves when told to; for tests. */
export function manualClock(start = new Date('2026-01-01T00:00:00Z')): Clock & {
  advance(ms: number): void;
} {
  let current = start.getTime();
  let mono = 0;
  return {
    now: () => new Date(current),
    monotonicMs: () => mono,
    advance(ms: number) {
      current += ms;
      mono += ms;
    },
  };
}

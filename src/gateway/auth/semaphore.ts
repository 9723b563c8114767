// Bounds expensive verification work (scrypt, TokenReview) so a flood of bad credentials costs
// the gateway a fixed amount of memory, threads and API-server calls.

/** Counts slots; `tryAcquire` refuses instead of queueing without bound. */
export class Semaphore {
  readonly #max: number;
  readonly #maxQueued: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(max: number, maxQueued: number) {
    if (!(max >= 1) || !(maxQueued >= 0)) throw new Error('invalid concurrency limits');
    this.#max = max;
    this.#maxQueued = maxQueued;
  }

  /** A promise that resolves when a slot is held, or undefined when the queue is full. */
  tryAcquire(): Promise<void> | undefined {
    if (this.#running < this.#max) {
      this.#running++;
      return Promise.resolve();
    }
    if (this.#waiting.length >= this.#maxQueued) return undefined;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#running--;
  }
}

/**
 * Pre-started single-use sandboxes, keyed by runtime and by every limit that is fixed when a
 * sandbox starts (memory, pids, cpu, workspace size). A call only ever takes a sandbox built
 * with exactly its own limits, uses it once, and the sandbox is destroyed; the pool refills in
 * the background, one spawn at a time, never above `size` per key.
 */
import type { Runtime, ToolLimits } from '../api/v1alpha1/mcpserver.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { Sandbox } from './sandbox.ts';

export interface PoolKey {
  runtime: Runtime;
  limits: ToolLimits;
  /** Egress sandboxes differ at spawn (bind mount, seccomp variant, env): their own keys. */
  egress: boolean;
}

/**
 * Only what a started sandbox carries: limits, and whether it is egress-capable; timeout, output
 * cap and env are applied per call. A non-egress call never gets an egress-capable sandbox.
 */
export function poolKey(runtime: Runtime, limits: ToolLimits, egress = false): string {
  return `${runtime}/mem=${limits.memoryMiB}/pids=${limits.pids}/cpu=${limits.cpuMillicores}/tmpfs=${limits.tmpfsMiB}${egress ? '/egress' : ''}`;
}

export interface WarmPoolOptions {
  /** Idle sandboxes kept per key. */
  size: number;
  /** Distinct limit sets kept warm; the least recently used beyond this is dropped. */
  maxKeys: number;
  /** A warm sandbox older than this is replaced (bounds nsjail's own time limit). */
  maxIdleMs: number;
  spawn(runtime: Runtime, limits: ToolLimits, egress: boolean): Promise<Sandbox>;
  /**
   * How long a refill waits after a take unless the call ends first (`callEnded`): a spawn
   * costs the event loop a few milliseconds and the interpreter's start-up a core, which the
   * call that just took a sandbox would otherwise wait for. Default 20 ms.
   */
  refillDelayMs?: number;
  /**
   * How long after a call's answer the refill starts: the answer still has to leave the process
   * (in `serve`, the gateway's response), and a spawn in that window delays it by the fork and
   * the interpreter's start-up (measured: 7 ms of a 10 ms warm call through the gateway).
   * Default 5 ms.
   */
  refillAfterAnswerMs?: number;
  clock: Clock;
  logger: Logger;
}

interface Entry {
  key: PoolKey;
  idle: Sandbox[];
  lastUsed: number;
}

export class WarmPool {
  private readonly options: WarmPoolOptions;
  private readonly entries = new Map<string, Entry>();
  private filling: Promise<void> | undefined;
  private fillAgain = false;
  private closed = false;
  private recycleTimer: NodeJS.Timeout | undefined;
  private refillTimer: NodeJS.Timeout | undefined;

  constructor(options: WarmPoolOptions) {
    this.options = options;
    if (options.size > 0) {
      this.recycleTimer = setInterval(() => this.recycle(), Math.max(1000, options.maxIdleMs / 4));
      this.recycleTimer.unref();
    }
  }

  /** Keeps this limit set (egress-capable or not) warm from now on. */
  register(runtime: Runtime, limits: ToolLimits, egress = false): void {
    if (this.options.size === 0 || this.closed) return;
    const id = poolKey(runtime, limits, egress);
    const existing = this.entries.get(id);
    if (existing) {
      existing.lastUsed = this.options.clock.monotonicMs();
    } else {
      this.entries.set(id, {
        key: { runtime, limits, egress },
        idle: [],
        lastUsed: this.options.clock.monotonicMs(),
      });
      this.evictBeyondMaxKeys();
    }
    this.fill();
  }

  /** A ready sandbox with exactly these limits and egress, or undefined (start a cold one). */
  take(runtime: Runtime, limits: ToolLimits, egress = false): Sandbox | undefined {
    if (this.options.size === 0 || this.closed) return undefined;
    const id = poolKey(runtime, limits, egress);
    const entry = this.entries.get(id);
    this.register(runtime, limits, egress);
    if (!entry) return undefined;
    const now = this.options.clock.monotonicMs();
    while (entry.idle.length > 0) {
      const sandbox = entry.idle.shift()!;
      if (sandbox.usable && now - sandbox.spawnedAt < this.options.maxIdleMs) {
        this.fillSoon();
        return sandbox;
      }
      void sandbox.discard();
    }
    this.fillSoon();
    return undefined;
  }

  /** A call that took (or could not take) a sandbox has its answer: refill once it is sent. */
  callEnded(): void {
    if (this.refillTimer === undefined) return;
    clearTimeout(this.refillTimer);
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fill();
    }, this.options.refillAfterAnswerMs ?? 5);
    this.refillTimer.unref();
  }

  private fillSoon(): void {
    if (this.refillTimer !== undefined || this.closed) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fill();
    }, this.options.refillDelayMs ?? 20);
    this.refillTimer.unref();
  }

  get idleCount(): number {
    let n = 0;
    for (const entry of this.entries.values()) n += entry.idle.filter((s) => s.usable).length;
    return n;
  }

  /** Resolves when every key has its full complement (for start-up and tests). */
  async whenFilled(): Promise<void> {
    if (this.refillTimer !== undefined) {
      clearTimeout(this.refillTimer);
      this.refillTimer = undefined;
      this.fill();
    }
    while (this.filling) await this.filling;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.recycleTimer) clearInterval(this.recycleTimer);
    if (this.refillTimer) clearTimeout(this.refillTimer);
    await this.filling?.catch(() => undefined);
    const all = [...this.entries.values()].flatMap((e) => e.idle);
    this.entries.clear();
    await Promise.all(all.map((s) => s.discard()));
  }

  private evictBeyondMaxKeys(): void {
    while (this.entries.size > this.options.maxKeys) {
      let oldest: [string, Entry] | undefined;
      for (const item of this.entries)
        if (!oldest || item[1].lastUsed < oldest[1].lastUsed) oldest = item;
      if (!oldest) return;
      this.entries.delete(oldest[0]);
      for (const sandbox of oldest[1].idle) void sandbox.discard();
    }
  }

  private recycle(): void {
    const now = this.options.clock.monotonicMs();
    for (const entry of this.entries.values()) {
      const keep: Sandbox[] = [];
      for (const sandbox of entry.idle) {
        if (sandbox.usable && now - sandbox.spawnedAt < this.options.maxIdleMs) keep.push(sandbox);
        else void sandbox.discard();
      }
      entry.idle = keep;
    }
    this.fill();
  }

  private nextMissing(): Entry | undefined {
    for (const entry of this.entries.values()) {
      entry.idle = entry.idle.filter((s) => s.usable);
      if (entry.idle.length < this.options.size) return entry;
    }
    return undefined;
  }

  /** One background filler at a time, so refills never compete with calls more than one spawn's worth. */
  private fill(): void {
    if (this.closed) return;
    if (this.filling) {
      // The running filler may already have passed the entry that just lost a sandbox.
      this.fillAgain = true;
      return;
    }
    this.fillAgain = false;
    this.filling = (async () => {
      let failures = 0;
      for (let entry = this.nextMissing(); entry && !this.closed; entry = this.nextMissing()) {
        try {
          const { runtime, limits, egress } = entry.key;
          const sandbox = await this.options.spawn(runtime, limits, egress);
          // Pace refills by real readiness, so a burst of refills never starves running calls.
          await sandbox.ready;
          if (!sandbox.usable) {
            // Died while starting (e.g. a memory limit too small for the interpreter): never
            // respawn in a tight loop; the calls themselves will report the outcome.
            throw new Error('the sandbox died while starting');
          }
          if (this.closed || !this.entries.has(poolKey(runtime, limits, egress))) {
            await sandbox.discard();
          } else {
            entry.idle.push(sandbox);
          }
        } catch (error) {
          failures += 1;
          this.options.logger.warn(
            { err: error, key: poolKey(entry.key.runtime, entry.key.limits, entry.key.egress) },
            'warm sandbox failed to start',
          );
          if (failures >= 3) break;
        }
      }
    })().finally(() => {
      this.filling = undefined;
      if (this.fillAgain) this.fill();
    });
  }
}

// Executor latency and throughput: trivial python/node/bash calls through the real nsjail sandbox,
// cold and from the warm pool, against a bare spawn of the same interpreter measured in this run.
import { spawn } from 'node:child_process';
import {
  DEFAULT_LIMITS,
  createSandboxExecutor,
  warmPoolOf,
} from '../../src/executor/sandbox-executor.ts';
import { toolCall } from '../../src/executor/testing.ts';
import type { SandboxExecutor } from '../../src/executor/types.ts';
import type { Runtime } from '../../src/api/v1alpha1/mcpserver.ts';
import type { BenchContext, BenchFigure } from './types.ts';

const SUITE = 'executor';
const SAMPLES = 25;
/** Idle time between measurements for asynchronous teardown to finish. */
const SETTLE_MS = 40;

const TRIVIAL: Record<Runtime, string> = {
  python: 'def main(args):\n    return "ok"',
  node: 'function main(args) { return "ok"; }',
  bash: 'echo ok',
};
const BARE: Record<Runtime, { command: string; args: string[]; label: string }> = {
  python: { command: '/usr/bin/python3', args: ['-c', 'pass'], label: 'bare python3 -c pass' },
  node: { command: '/usr/bin/node', args: ['-e', '0'], label: 'bare node -e 0' },
  bash: { command: '/bin/bash', args: ['-c', 'true'], label: 'bare bash -c true' },
};

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function bareSpawn(runtime: Runtime): Promise<number> {
  const { command, args } = BARE[runtime];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore', env: {} });
    child.on('error', reject);
    child.on('exit', () => resolve(performance.now() - started));
  });
}

async function settle(pool: { whenFilled(): Promise<void> }): Promise<void> {
  await pool.whenFilled();
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
}

function call(runtime: Runtime) {
  return toolCall(runtime, TRIVIAL[runtime], { limits: DEFAULT_LIMITS });
}

async function timed(
  executor: SandboxExecutor,
  runtime: Runtime,
  expectKind: 'warm' | 'cold',
): Promise<number> {
  const started = performance.now();
  const r = await executor.execute(call(runtime));
  const elapsed = performance.now() - started;
  if (r.outcome !== 'ok')
    throw new Error(`${runtime} ${expectKind} call failed: ${r.outcome} ${r.message ?? ''}`);
  if (!r.executor.endsWith(`/${expectKind}`))
    throw new Error(`${runtime}: expected a ${expectKind} sandbox, got ${r.executor}`);
  return elapsed;
}

async function throughput(
  executor: SandboxExecutor,
  concurrency: number,
  total: number,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next += 1;
        const r = await executor.execute(call('python'));
        if (r.outcome !== 'ok')
          throw new Error(`throughput call failed: ${r.outcome} ${r.message ?? ''}`);
      }
    }),
  );
  return total / ((performance.now() - started) / 1000);
}

export default async function bench(ctx: BenchContext): Promise<BenchFigure[]> {
  if (!ctx.nsjailPath) throw new Error('nsjail is required for the executor benchmark');
  const figures: BenchFigure[] = [];
  const cold = await createSandboxExecutor({
    nsjailPath: ctx.nsjailPath,
    warmPoolSize: 0,
    maxConcurrency: 8,
  });
  const warm = await createSandboxExecutor({
    nsjailPath: ctx.nsjailPath,
    warmPoolSize: 1,
    maxConcurrency: 8,
  });
  try {
    await cold.probe();
    await warm.probe();
    const pool = warmPoolOf(warm)!;
    for (const runtime of ['python', 'node', 'bash'] as const) {
      const bare: number[] = [];
      const coldTimes: number[] = [];
      const warmTimes: number[] = [];
      for (let i = 0; i < 3; i += 1) await bareSpawn(runtime); // page cache
      for (let i = 0; i < SAMPLES; i += 1) {
        // Measure each kind alone: the previous sandbox's teardown and the pool's refill (both
        // asynchronous by design) finish before the next measurement starts.
        await settle(pool);
        bare.push(await bareSpawn(runtime));
        await settle(pool);
        coldTimes.push(await timed(cold, runtime, 'cold'));
        await settle(pool);
        warmTimes.push(await timed(warm, runtime, 'warm'));
      }
      for (const p of [50, 95] as const) {
        const base = { name: `${BARE[runtime].label} p${p}`, value: percentile(bare, p) };
        const c = percentile(coldTimes, p);
        const w = percentile(warmTimes, p);
        figures.push(
          { suite: SUITE, name: `${BARE[runtime].label} p${p}`, value: base.value, unit: 'ms' },
          {
            suite: SUITE,
            name: `${runtime} cold sandbox p${p}`,
            value: c,
            unit: 'ms',
            baseline: base,
            ratio: c / base.value,
            ...(runtime === 'python' && p === 50
              ? { goal: 'within 10 ms of bare', met: c - base.value <= 10 }
              : {}),
          },
          {
            suite: SUITE,
            name: `${runtime} warm pool p${p}`,
            value: w,
            unit: 'ms',
            baseline: base,
            ratio: w / base.value,
            ...(runtime === 'python' && p === 50 ? { goal: '< 1x bare', met: w < base.value } : {}),
          },
        );
      }
      ctx.log(
        `${runtime}: bare p50 ${percentile(bare, 50).toFixed(1)} ms, cold ${percentile(coldTimes, 50).toFixed(1)} ms, warm ${percentile(warmTimes, 50).toFixed(1)} ms`,
      );
    }
    // Steady-state throughput of trivial python calls: warm pool of one per key, refilled under load.
    let baseline: number | undefined;
    for (const concurrency of [1, 2, 4, 8]) {
      await pool.whenFilled();
      const value = await throughput(warm, concurrency, 40);
      baseline ??= value;
      figures.push({
        suite: SUITE,
        name: `python calls/s at concurrency ${concurrency}`,
        value,
        unit: 'calls/s',
        ...(concurrency > 1
          ? { baseline: { name: 'concurrency 1', value: baseline }, ratio: value / baseline }
          : {}),
      });
    }
  } finally {
    await cold.close();
    await warm.close();
  }
  return figures;
}

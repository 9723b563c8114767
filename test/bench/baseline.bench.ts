// Baseline figures of the test infrastructure: control-plane warm start/stop, and the cost of
// nsjail around a trivial interpreter run compared with a bare spawn.
import { performance } from 'node:perf_hooks';
import { startControlPlane } from '../harness/controlplane.ts';
import {
  findInterpreter,
  jailArgs,
  nodeMounts,
  pythonMounts,
  run,
  type RunResult,
} from '../harness/nsjail.ts';
import { percentile, round, timeRuns } from '../harness/stats.ts';
import type { BenchContext, BenchFigure } from './types.ts';

const CONTROL_PLANE_STARTS = 3;
const SPAWN_RUNS = 20;

async function controlPlane(ctx: BenchContext): Promise<BenchFigure[]> {
  const starts: number[] = [];
  const stops: number[] = [];
  for (let i = 0; i < CONTROL_PLANE_STARTS; i++) {
    let t = performance.now();
    const cp = await startControlPlane({ binDir: ctx.controlPlaneBin });
    starts.push(performance.now() - t);
    t = performance.now();
    await cp.stop();
    stops.push(performance.now() - t);
  }
  ctx.log(`control plane starts ${starts.map((s) => round(s, 0)).join(', ')} ms`);
  const t = performance.now();
  const withKcm = await startControlPlane({ binDir: ctx.controlPlaneBin, controllerManager: true });
  const kcmStart = performance.now() - t;
  await withKcm.stop();
  const startP50 = percentile(starts, 50);
  return [
    {
      suite: 'controlplane',
      name: `warm start to /readyz p50 (${CONTROL_PLANE_STARTS} runs)`,
      value: round(startP50, 0),
      unit: 'ms',
      goal: '< 10000 ms',
      met: startP50 < 10_000,
    },
    {
      suite: 'controlplane',
      name: 'warm start max',
      value: round(Math.max(...starts), 0),
      unit: 'ms',
    },
    {
      suite: 'controlplane',
      name: 'warm start with kube-controller-manager',
      value: round(kcmStart, 0),
      unit: 'ms',
      baseline: { name: 'without', value: round(startP50, 0) },
      ratio: round(kcmStart / startP50, 2),
    },
    { suite: 'controlplane', name: 'stop p50', value: round(percentile(stops, 50), 0), unit: 'ms' },
  ];
}

function mustSucceed(what: string) {
  return (res: RunResult) => {
    if (res.code !== 0) throw new Error(`${what} exited ${res.code}: ${res.stderr}`);
  };
}

// The bare baselines run with an empty environment, as nsjail clears it: an inherited environment
// alone can add tens of milliseconds to node's start-up.
async function compare(
  name: string,
  bare: () => Promise<unknown>,
  jailed: () => Promise<unknown>,
): Promise<BenchFigure[]> {
  await bare();
  await jailed(); // warm the page cache for both
  const b = await timeRuns(SPAWN_RUNS, bare);
  const j = await timeRuns(SPAWN_RUNS, jailed);
  return [50, 95].map((p) => {
    const value = round(percentile(j, p));
    const base = round(percentile(b, p));
    return {
      suite: 'nsjail',
      name: `${name} p${p} (${SPAWN_RUNS} runs)`,
      value,
      unit: 'ms',
      baseline: { name: `bare spawn p${p}`, value: base },
      ratio: round(value / base, 2),
    };
  });
}

async function nsjail(ctx: BenchContext): Promise<BenchFigure[]> {
  const jail = ctx.nsjailPath;
  if (!jail) throw new Error('nsjail is not available (run `make components`)');
  const python = findInterpreter('python3');
  const node = findInterpreter('node');
  const py = ['-c', 'pass'];
  const js = ['-e', '0'];
  const pyMounts = pythonMounts(python);
  const nodeBinds = nodeMounts(node);
  return [
    ...(await compare(
      'python3 -c pass',
      () => run(python, py, { env: {} }).then(mustSucceed('python3')),
      () => run(jail, jailArgs(pyMounts, [python, ...py])).then(mustSucceed('nsjail python3')),
    )),
    ...(await compare(
      'node -e 0',
      () => run(node, js, { env: {} }).then(mustSucceed('node')),
      () => run(jail, jailArgs(nodeBinds, [node, ...js])).then(mustSucceed('nsjail node')),
    )),
  ];
}

export default async function bench(ctx: BenchContext): Promise<BenchFigure[]> {
  return [...(await controlPlane(ctx)), ...(await nsjail(ctx))];
}

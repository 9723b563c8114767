// The cost of validating manifests: zod (what the controller and `mcpworks serve` run on every
// object) against the API server's own validation of the same object (a dry-run create), plus
// the CEL condition check and CRD generation.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildCrds } from '../../src/api/crds.ts';
import { loadManifests, validateObject } from '../../src/api/manifests.ts';
import { checkConditionSyntax } from '../../src/api/v1alpha1/index.ts';
import { startControlPlane } from '../harness/controlplane.ts';
import { repoRoot } from '../harness/paths.ts';
import { percentile, round, timeRuns } from '../harness/stats.ts';
import { collectionPath, installCrds, kubeRequest } from '../integration/crds-client.ts';
import type { BenchContext, BenchFigure } from './types.ts';

const ZOD_RUNS = 2000;
const API_RUNS = 100;

function perOpMicros(runs: number, fn: () => unknown): number {
  for (let i = 0; i < Math.min(200, runs); i++) fn(); // warm up the JIT
  const start = performance.now();
  for (let i = 0; i < runs; i++) fn();
  return ((performance.now() - start) * 1000) / runs;
}

export default async function bench(ctx: BenchContext): Promise<BenchFigure[]> {
  const samplesDir = join(repoRoot, 'config', 'samples');
  const samples = await loadManifests([samplesDir]);
  const server = JSON.parse(JSON.stringify(samples.servers[0])) as Record<string, unknown>;
  const policy = JSON.parse(JSON.stringify(samples.policies[0])) as Record<string, unknown>;

  const serverMicros = perOpMicros(ZOD_RUNS, () => validateObject(server));
  const policyMicros = perOpMicros(ZOD_RUNS, () => validateObject(policy));
  const conditionMicros = perOpMicros(ZOD_RUNS, () =>
    checkConditionSyntax(
      'has(args.path) && args.path.startsWith("/tmp/") && size(args.path) < 256',
    ),
  );
  const loadMs = percentile(await timeRuns(20, () => loadManifests([samplesDir])), 50);
  const crdMs = percentile(await timeRuns(10, async () => buildCrds()), 50);

  const cp = await startControlPlane({ binDir: ctx.controlPlaneBin });
  let apiMs: number;
  try {
    await installCrds(cp.kubeConfig, join(repoRoot, 'crds'));
    const path = `${collectionPath(server as never)}?dryRun=All&fieldValidation=Strict`;
    const create = async () => {
      const res = await kubeRequest(cp.kubeConfig, 'POST', path, server);
      if (res.status !== 201) throw new Error(`dry-run create failed: ${String(res.body.message)}`);
    };
    await timeRuns(10, create);
    apiMs = percentile(await timeRuns(API_RUNS, create), 50);
  } finally {
    await cp.stop();
  }
  ctx.log(`zod McpServer ${round(serverMicros)} µs, API server dry-run ${round(apiMs, 2)} ms`);

  return [
    {
      suite: 'api',
      name: 'validateObject(sample McpServer, 3 tools)',
      value: round(serverMicros),
      unit: 'µs/op',
      baseline: { name: 'API server dry-run create p50 (µs)', value: round(apiMs * 1000, 0) },
      ratio: round(serverMicros / (apiMs * 1000), 4),
    },
    {
      suite: 'api',
      name: 'validateObject(sample AgentPolicy, with a CEL condition)',
      value: round(policyMicros),
      unit: 'µs/op',
    },
    {
      suite: 'api',
      name: 'checkConditionSyntax (one condition)',
      value: round(conditionMicros),
      unit: 'µs/op',
    },
    {
      suite: 'api',
      name: 'loadManifests(config/samples) p50',
      value: round(loadMs, 2),
      unit: 'ms',
    },
    { suite: 'api', name: 'buildCrds() p50 (3 CRDs)', value: round(crdMs, 1), unit: 'ms' },
  ];
}

/**
 * The CRDs against a real kube-apiserver: they install and become Established, every sample
 * applies, and for every case of the validation tables the API server and zod (validateObject)
 * agree on accept / reject and name the same field.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { buildCrds } from '../../src/api/crds.ts';
import { loadManifests, validateObject } from '../../src/api/manifests.ts';
import {
  ALL_CROSS_FIELD_RULES,
  CONTROLLER_ONLY_RULES,
  LIMIT_BOUNDS,
} from '../../src/api/v1alpha1/index.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { repoRoot } from '../harness/paths.ts';
import { INVALID_CASES, VALID_CASES, type Obj } from './crds-cases.ts';
import { MUTATION_VALUES, mutate, nodePaths, showPath } from './crds-fuzz.ts';
import { collectionPath, installCrds, kubeRequest } from './crds-client.ts';

const execFileAsync = promisify(execFile);
const FIELD_MANAGER = 'mcpworks-crds-test';

let cp: ControlPlane;
let namespace: string;
let installed: string[];

before(async () => {
  cp = await startControlPlane();
  installed = await installCrds(cp.kubeConfig, join(repoRoot, 'crds'));
  namespace = await cp.newNamespace('crds');
});
after(() => cp?.stop());

/** What `kubectl create --dry-run=server` does: full validation, nothing stored. */
async function dryRunCreate(obj: Obj) {
  const inNamespace = { ...obj, metadata: { ...obj.metadata, namespace } };
  return kubeRequest(
    cp.kubeConfig,
    'POST',
    `${collectionPath(inNamespace)}?dryRun=All&fieldValidation=Strict`,
    inNamespace,
  );
}

/** What `kubectl apply --server-side` does. */
async function serverSideApply(obj: Obj) {
  const path = `${collectionPath(obj)}/${String(obj.metadata.name)}?fieldManager=${FIELD_MANAGER}&fieldValidation=Strict`;
  return kubeRequest(cp.kubeConfig, 'PATCH', path, obj, 'application/apply-patch+yaml');
}

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    join(cp.binDir, 'kubectl'),
    ['--kubeconfig', cp.kubeconfigPath, ...args],
    {
      timeout: 30_000,
    },
  );
  return stdout;
}

const zodErrors = (obj: Obj): string[] => {
  const result = validateObject(obj);
  return result.ok ? [] : result.errors;
};

describe('CRD installation', () => {
  test('all three CRDs are Established', () => {
    assert.deepEqual(installed.sort(), [
      'agentpolicies.mcpworks.io',
      'clusteragentpolicies.mcpworks.io',
      'mcpservers.mcpworks.io',
    ]);
  });

  test('discovery publishes short names and the mcpworks category', async () => {
    const res = await kubeRequest(cp.kubeConfig, 'GET', '/apis/mcpworks.io/v1alpha1');
    const resources = res.body.resources as Array<{
      name: string;
      shortNames?: string[];
      categories?: string[];
    }>;
    const byName = new Map(resources.map((r) => [r.name, r]));
    assert.deepEqual(byName.get('mcpservers')?.shortNames, ['mcps']);
    assert.deepEqual(byName.get('agentpolicies')?.shortNames, ['ap']);
    assert.deepEqual(byName.get('clusteragentpolicies')?.shortNames, ['cap']);
    for (const plural of ['mcpservers', 'agentpolicies', 'clusteragentpolicies']) {
      assert.deepEqual(byName.get(plural)?.categories, ['mcpworks'], plural);
    }
  });
});

describe('kustomize layout', () => {
  test('config/default installs exactly the generated CRDs', async () => {
    const rendered = parseAllDocuments(
      await kubectl('kustomize', join(repoRoot, 'config', 'default')),
    ).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
    const crds = rendered
      .filter((d) => d.kind === 'CustomResourceDefinition')
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const generated = buildCrds().sort((a, b) =>
      String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
    );
    assert.deepEqual(crds, JSON.parse(JSON.stringify(generated)));
  });

  test('kubectl apply --server-side -k config/samples passes server validation', async () => {
    const out = await kubectl(
      'apply',
      '--server-side',
      '--dry-run=server',
      '--field-manager=kubectl-samples',
      '-k',
      join(repoRoot, 'config', 'samples'),
    );
    assert.match(out, /mcpserver\.mcpworks\.io\/demo serverside-applied/);
    assert.match(out, /agentpolicy\.mcpworks\.io\/demo-agent-access serverside-applied/);
    assert.match(out, /clusteragentpolicy\.mcpworks\.io\/deny-shell-tools serverside-applied/);
    assert.match(out, /secret\/demo-api-keys serverside-applied/);
  });
});

describe('samples', () => {
  let samples: Awaited<ReturnType<typeof loadManifests>>;
  before(async () => {
    samples = await loadManifests([join(repoRoot, 'config', 'samples')]);
  });

  const inTestNamespace = <T extends { metadata: Record<string, unknown> }>(obj: T): T => ({
    ...obj,
    metadata: { ...obj.metadata, namespace },
  });
  const raw = (obj: unknown) => JSON.parse(JSON.stringify(obj)) as Obj;

  test('every sample applies with server-side apply and strict field validation', async () => {
    const objects = [
      ...samples.secrets.map(inTestNamespace),
      ...samples.servers.map(inTestNamespace),
      ...samples.policies.map(inTestNamespace),
      ...samples.clusterPolicies,
    ];
    assert.equal(objects.length, 4);
    for (const obj of objects) {
      const res = await serverSideApply(raw(obj));
      assert.equal(
        res.status,
        201,
        `${obj.kind} ${String(obj.metadata.name)}: ${String(res.body.message)}`,
      );
    }
  });

  test('the API server defaults the sample McpServer exactly as zod does', async () => {
    const sample = samples.servers[0];
    assert.ok(sample);
    const { apiVersion, kind, metadata, spec } = sample;
    const bare = {
      apiVersion,
      kind,
      metadata: { name: `${metadata.name}-defaults`, namespace },
      spec: raw(spec),
    };
    const res = await kubeRequest(
      cp.kubeConfig,
      'POST',
      `${collectionPath(bare)}?fieldValidation=Strict`,
      {
        ...bare,
        spec: stripDefaults(bare.spec),
      },
    );
    assert.equal(res.status, 201, String(res.body.message));
    assert.deepEqual(res.body.spec, raw(spec));
  });

  test('kubectl lists every kind through the mcpworks category, with the printer columns', async () => {
    const names = await kubectl('get', 'mcpworks', '-n', namespace, '-o', 'name');
    assert.match(names, /^mcpserver\.mcpworks\.io\/demo$/m);
    assert.match(names, /^agentpolicy\.mcpworks\.io\/demo-agent-access$/m);
    assert.match(names, /^clusteragentpolicy\.mcpworks\.io\/deny-shell-tools$/m);

    const status = {
      status: {
        observedGeneration: 1,
        tools: 3,
        endpoint: 'http://demo-gateway.test.svc:8080/mcp',
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'Serving',
            message: 'ok',
            lastTransitionTime: new Date(0).toISOString(),
          },
        ],
      },
    };
    const path = `/apis/mcpworks.io/v1alpha1/namespaces/${namespace}/mcpservers/demo/status`;
    const res = await kubeRequest(
      cp.kubeConfig,
      'PATCH',
      path,
      status,
      'application/merge-patch+json',
    );
    assert.equal(res.status, 200, String(res.body.message));

    const table = await kubectl('get', 'mcps', '-n', namespace);
    const [header, row] = table.trim().split('\n');
    assert.deepEqual(header?.split(/\s+/), ['NAME', 'READY', 'TOOLS', 'ENDPOINT', 'AGE']);
    assert.deepEqual(row?.split(/\s+/).slice(0, 4), [
      'demo',
      'True',
      '3',
      'http://demo-gateway.test.svc:8080/mcp',
    ]);
  });
});

describe('invalid resources', () => {
  for (const c of INVALID_CASES) {
    if (c.controllerOnly === undefined) {
      test(`API server and zod reject: ${c.name} (${c.field})`, async () => {
        const res = await dryRunCreate(c.object);
        const message = String(res.body.message);
        assert.ok(
          res.status === 422 || res.status === 400,
          `API server accepted it (HTTP ${res.status})`,
        );
        assert.ok(
          message.includes(c.field),
          `API server message does not name ${c.field}: ${message}`,
        );
        if (c.message !== undefined) {
          assert.ok(
            message.includes(c.message),
            `API server message lacks "${c.message}": ${message}`,
          );
        }
        const errors = zodErrors(c.object);
        assert.ok(
          errors.some((e) => e.startsWith(c.field)),
          `zod does not name ${c.field}: ${JSON.stringify(errors)}`,
        );
      });
    } else {
      test(`controller only (the API server stores it): ${c.name} (${c.field})`, async () => {
        const res = await dryRunCreate(c.object);
        assert.equal(
          res.status,
          201,
          `expected the API server to accept it: ${String(res.body.message)}`,
        );
        const errors = zodErrors(c.object);
        assert.ok(
          errors.some((e) => e.startsWith(c.field)),
          `zod does not reject ${c.field}: ${JSON.stringify(errors)}`,
        );
      });
    }
  }

  test('every cross-field and controller-only rule has a failing case', () => {
    const covered = new Set(INVALID_CASES.map((c) => c.rule));
    for (const rule of [...ALL_CROSS_FIELD_RULES, ...CONTROLLER_ONLY_RULES]) {
      assert.ok(covered.has(rule.id), `no invalid case exercises rule ${rule.id}`);
    }
  });

  test('the table has at least 30 cases the API server rejects by itself', (t) => {
    const byServer = INVALID_CASES.filter((c) => c.controllerOnly === undefined).length;
    const byController = INVALID_CASES.length - byServer;
    t.diagnostic(
      `invalid cases: ${INVALID_CASES.length}; API server: ${byServer}; controller only: ${byController}`,
    );
    assert.ok(byServer >= 30, `only ${byServer}`);
  });
});

describe('valid edge cases', () => {
  for (const c of VALID_CASES) {
    test(`API server and zod accept: ${c.name}`, async () => {
      assert.deepEqual(zodErrors(c.object), []);
      const res = await dryRunCreate(c.object);
      assert.equal(res.status, 201, String(res.body.message));
    });
  }
});

const CONTROLLER_ONLY_ERROR =
  /^spec\.rules\[\d+\]\.conditions\[\d+\]: (does not compile|must be a boolean)/;

describe('differential fuzzing', () => {
  const FUZZ_RUNS = Number(process.env.MCPWORKS_CRD_FUZZ_RUNS ?? 300);
  const FUZZ_SEED = Number(process.env.MCPWORKS_CRD_FUZZ_SEED ?? 20261124);

  test(`zod and the API server agree on ${FUZZ_RUNS} random one-field mutations of valid objects`, async (t) => {
    const bases = VALID_CASES.map((c) => c.object);
    const arbitrary = fc
      .record({
        base: fc.integer({ min: 0, max: bases.length - 1 }),
        pathIndex: fc.nat(),
        mutation: fc.oneof(
          fc.constant<{ op: 'delete' }>({ op: 'delete' }),
          fc.constant<{ op: 'unknown-field' }>({ op: 'unknown-field' }),
          fc.constantFrom(...MUTATION_VALUES).map((value) => ({ op: 'set' as const, value })),
        ),
      })
      .map(({ base, pathIndex, mutation }) => {
        const object = bases[base] as Obj;
        const paths = nodePaths(object);
        const path = paths[pathIndex % paths.length] ?? [];
        return {
          base: VALID_CASES[base]?.name,
          path: showPath(path),
          mutation,
          object: mutate(object, path, mutation),
        };
      });
    const disagreements: string[] = [];
    const tally = { accepted: 0, rejected: 0 };
    await fc
      .assert(
        fc.asyncProperty(arbitrary, async (c) => {
          const zod = zodErrors(c.object);
          const res = await dryRunCreate(c.object);
          const apiAccepts = res.status === 201;
          tally[apiAccepts ? 'accepted' : 'rejected']++;
          // The one documented disagreement: condition syntax, which only the controller checks.
          const zodAccepts = zod.every((e) => CONTROLLER_ONLY_ERROR.test(e));
          if (apiAccepts !== zodAccepts) {
            disagreements.push(
              `${c.base} / ${c.path} ${JSON.stringify(c.mutation)}: API server ${apiAccepts ? 'accepts' : `rejects (${String(res.body.message)})`}; zod ${zod.length === 0 ? 'accepts' : `rejects (${zod.join('; ')})`}`,
            );
            return false;
          }
          return true;
        }),
        { numRuns: FUZZ_RUNS, seed: FUZZ_SEED, endOnFailure: true },
      )
      .catch((error: unknown) => {
        throw new Error(`${disagreements.join('\n')}\n${String(error)}`);
      });
    t.diagnostic(
      `seed ${FUZZ_SEED}: API server accepted ${tally.accepted}, rejected ${tally.rejected}; zod agreed on all`,
    );
  });
});

/** The spec a user would write: drop every field whose value equals its default, recursively. */
function stripDefaults(spec: Obj): Obj {
  const copy = structuredClone(spec) as Record<string, unknown>;
  for (const key of ['gateway', 'executor', 'audit']) delete copy[key];
  const auth = copy.auth as Record<string, unknown>;
  delete auth.anonymous;
  for (const tool of copy.tools as Array<Record<string, unknown>>) {
    const limits = tool.limits as Record<string, number>;
    for (const [key, value] of Object.entries(limits)) {
      if (value === LIMIT_BOUNDS[key as keyof typeof LIMIT_BOUNDS].default) delete limits[key];
    }
    if (Object.keys(limits).length === 0) delete tool.limits;
    if (tool.timeoutSeconds === LIMIT_BOUNDS.timeoutSeconds.default) delete tool.timeoutSeconds;
  }
  return copy as Obj;
}

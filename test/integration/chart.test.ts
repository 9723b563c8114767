// The Helm chart and the kustomize install, checked by a real API server: helm lint, every
// values file rendered and applied with server-side dry-run, bad values rejected at render time,
// CRDs and RBAC identical to the generated sources, and the operator pod admitted under the
// `restricted` Pod Security level.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { repoRoot } from '../harness/paths.ts';
import {
  applyCrds,
  binary,
  chartDir,
  helmTemplate,
  helmTemplateArgs,
  kubectlApply,
  kustomize,
  parseObjects,
  permissions,
  run,
  toYamlStream,
  yamlFiles,
  type K8sObject,
  type PolicyRule,
} from './chart-support.ts';

const valuesDir = join(repoRoot, 'test', 'fixtures', 'helm-values');
const invalidValuesDir = join(repoRoot, 'test', 'fixtures', 'helm-values-invalid');
const CLUSTER_SCOPED = new Set([
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'Namespace',
]);

let cp: ControlPlane;

before(async () => {
  cp = await startControlPlane();
  // The ServiceMonitor stand-in first, then the product's CRDs, so custom resources can be
  // dry-run below.
  await applyCrds(
    cp,
    readFileSync(
      join(repoRoot, 'test/fixtures/crds/servicemonitors.monitoring.coreos.com.yaml'),
      'utf8',
    ),
  );
  const crds = yamlFiles(join(chartDir, 'crds'));
  assert.ok(crds.length > 0, 'charts/mcpworks/crds/ has no CRDs');
  await applyCrds(cp, crds.map((f) => f.text).join('\n---\n'));
});
after(() => cp?.stop());

function byKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

function only(objects: readonly K8sObject[], kind: string): K8sObject {
  const found = byKind(objects, kind);
  assert.equal(found.length, 1, `expected exactly one ${kind}, found ${found.length}`);
  return found[0]!;
}

/**
 * Every Role and ClusterRole with the permissions it grants, keyed by kind and by name with the
 * release prefix removed (`mcpworks-controller`, `mcpworks-gateway`, `mcpworks-leader-election`).
 */
function grantsByRole(objects: readonly K8sObject[]): Record<string, string[]> {
  const grants: Record<string, string[]> = {};
  for (const o of objects) {
    if (o.kind !== 'ClusterRole' && o.kind !== 'Role') continue;
    const name = o.metadata.name.replace(/^.*?(mcpworks-)/, '$1');
    grants[`${o.kind}/${name}`] = permissions(o.rules as PolicyRule[]);
  }
  return grants;
}

async function assertServerAccepts(objects: readonly K8sObject[]): Promise<void> {
  const result = await kubectlApply(cp, toYamlStream(objects), { dryRun: true });
  assert.equal(result.code, 0, `server-side dry-run rejected the manifests:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /Warning/i, result.stderr);
}

describe('helm chart', () => {
  test('helm lint --strict passes', async () => {
    const result = await run(binary('helm'), ['lint', '--strict', chartDir]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
  });

  test('the chart CRDs are identical to the generated crds/', () => {
    const generated = yamlFiles(join(repoRoot, 'crds'));
    const packaged = yamlFiles(join(chartDir, 'crds'));
    assert.ok(generated.length > 0, 'crds/ is empty: run `make crds`');
    assert.deepEqual(
      packaged.map((f) => f.name),
      generated.map((f) => f.name),
      'charts/mcpworks/crds/ must hold the same files as crds/ (copy them over)',
    );
    for (const [i, file] of generated.entries()) {
      assert.equal(packaged[i]!.text, file.text, `charts/mcpworks/crds/${file.name} drifted`);
    }
  });

  const valueSets = [
    { name: 'default values', files: [] as string[] },
    ...readdirSync(valuesDir)
      .filter((n) => n.endsWith('.yaml'))
      .sort()
      .map((n) => ({ name: n, files: [join(valuesDir, n)] })),
  ];
  for (const values of valueSets) {
    test(`renders with ${values.name} and the API server accepts every object`, async () => {
      const namespace = await cp.newNamespace('chart');
      const objects = parseObjects(await helmTemplate({ namespace, valuesFiles: values.files }));
      assert.ok(byKind(objects, 'Deployment').length === 1, 'no operator Deployment rendered');
      for (const o of objects) {
        if (CLUSTER_SCOPED.has(o.kind)) continue;
        assert.equal(o.metadata.namespace, namespace, `${o.kind}/${o.metadata.name} namespace`);
      }
      await assertServerAccepts(objects);
    });
  }

  for (const file of yamlFiles(invalidValuesDir)) {
    const expected = /^# expect: (.+)$/m.exec(file.text)?.[1];
    test(`rejects invalid values: ${file.name}`, async () => {
      assert.ok(expected, `${file.name} must start with "# expect: <error text>"`);
      const result = await run(
        binary('helm'),
        helmTemplateArgs({ namespace: 'x', valuesFiles: [join(invalidValuesDir, file.name)] }),
      );
      assert.notEqual(result.code, 0, `helm template accepted ${file.name}`);
      assert.ok(result.stderr.includes(expected), `expected "${expected}" in:\n${result.stderr}`);
    });
  }

  test('the operator pod is admitted by a namespace that enforces Pod Security "restricted"', async () => {
    const namespace = await cp.newNamespace('restricted');
    const labelled = await run(binary('kubectl'), [
      '--kubeconfig',
      cp.kubeconfigPath,
      'label',
      'namespace',
      namespace,
      'pod-security.kubernetes.io/enforce=restricted',
    ]);
    assert.equal(labelled.code, 0, labelled.stderr);
    const deployment = only(parseObjects(await helmTemplate({ namespace })), 'Deployment');
    const template = (deployment.spec as { template: { metadata: object; spec: object } }).template;
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...template.metadata, name: 'operator-pod', namespace },
      spec: template.spec,
    };
    const result = await kubectlApply(cp, JSON.stringify(pod), { dryRun: true });
    assert.equal(
      result.code,
      0,
      `restricted namespace rejected the operator pod:\n${result.stderr}`,
    );
  });

  test('the Deployment runs `mcpworks controller` with leader election, probes and no privileges', async () => {
    const objects = parseObjects(await helmTemplate({ namespace: 'mcpworks-system' }));
    const spec = only(objects, 'Deployment').spec as {
      replicas: number;
      template: { spec: { containers: Record<string, unknown>[] } };
    };
    const container = spec.template.spec.containers[0] as {
      args: string[];
      livenessProbe: { httpGet: { path: string } };
      readinessProbe: { httpGet: { path: string } };
      securityContext: Record<string, unknown>;
      resources: { requests?: object; limits?: object };
    };
    assert.equal(spec.replicas, 2);
    assert.equal(container.args[0], 'controller');
    assert.ok(container.args.includes('--leader-elect=true'), container.args.join(' '));
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.deepEqual(container.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.ok(container.resources.requests && container.resources.limits);
  });

  test('the chart grants exactly what config/rbac grants (controller, gateway, leader election)', async () => {
    const rendered = parseObjects(await helmTemplate({ namespace: 'mcpworks-system' }));
    const source = parseObjects(await kustomize('config/rbac'));
    assert.deepEqual(
      grantsByRole(rendered),
      grantsByRole(source),
      'the chart RBAC drifted from config/rbac: run `node scripts/sync-chart-rbac.ts`',
    );
  });

  test('helm install and uninstall against the API server; NOTES.txt says what to do next', async () => {
    const namespace = await cp.newNamespace('helm-install');
    const helm = (...args: string[]) =>
      run(binary('helm'), ['--kubeconfig', cp.kubeconfigPath, '--namespace', namespace, ...args]);
    const installed = await helm('install', 'mcpworks', chartDir);
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(
      installed.stdout,
      new RegExp(`kubectl -n ${namespace} rollout status deployment/mcpworks`),
    );
    assert.match(installed.stdout, /pod-security\.kubernetes\.io\/enforce=privileged/);
    assert.match(installed.stdout, /mcpworks policy test/);
    const uninstalled = await helm('uninstall', 'mcpworks', '--wait', '--timeout', '60s');
    assert.equal(uninstalled.code, 0, uninstalled.stderr);
  });
});

describe('kustomize (config/default)', () => {
  test('builds, and the API server accepts every object', async () => {
    const objects = parseObjects(await kustomize('config/default'));
    const namespaces = byKind(objects, 'Namespace');
    assert.equal(namespaces.length, 1, 'config/default must create its namespace');
    // A dry-run cannot create the namespace the other objects go into: create it for real.
    const created = await kubectlApply(cp, toYamlStream(namespaces));
    assert.equal(created.code, 0, created.stderr);
    const namespace = namespaces[0]!.metadata.name;
    for (const o of objects) {
      if (CLUSTER_SCOPED.has(o.kind)) continue;
      assert.equal(o.metadata.namespace, namespace, `${o.kind}/${o.metadata.name} namespace`);
    }
    await assertServerAccepts(objects.filter((o) => o.kind !== 'Namespace'));
  });

  test('installs the same CRDs and the same ClusterRole permissions as the chart', async () => {
    const kustomized = parseObjects(await kustomize('config/default'));
    const charted = parseObjects(await helmTemplate({ namespace: 'x' }));
    const crdNames = (os: K8sObject[]) =>
      byKind(os, 'CustomResourceDefinition')
        .map((o) => o.metadata.name)
        .sort();
    const chartCrds = parseObjects(
      yamlFiles(join(chartDir, 'crds'))
        .map((f) => f.text)
        .join('\n---\n'),
    );
    assert.deepEqual(crdNames(kustomized), crdNames(chartCrds));
    assert.deepEqual(grantsByRole(kustomized), grantsByRole(charted));
  });
});

describe('GitOps examples', () => {
  test('the example team folder builds with kustomize and the API server accepts it', async () => {
    const objects = parseObjects(await kustomize('examples/gitops/apps/mcp-team'));
    const namespaces = byKind(objects, 'Namespace');
    const created = await kubectlApply(cp, toYamlStream(namespaces));
    assert.equal(created.code, 0, created.stderr);
    assert.ok(byKind(objects, 'McpServer').length > 0);
    assert.ok(byKind(objects, 'AgentPolicy').length > 0);
    await assertServerAccepts(objects.filter((o) => o.kind !== 'Namespace'));
  });

  test('the Argo CD and Flux examples point at paths that exist in this repository', () => {
    const referenced: string[] = [];
    for (const dir of ['argocd', 'flux']) {
      for (const file of yamlFiles(join(repoRoot, 'examples/gitops', dir))) {
        for (const o of parseObjects(file.text)) {
          const spec = (o.spec ?? {}) as { source?: { path?: string }; path?: string };
          const path = spec.source?.path ?? spec.path;
          if (path) referenced.push(path.replace(/^\.\//, ''));
        }
      }
    }
    assert.ok(referenced.length >= 4, `found only ${referenced.join(', ')}`);
    for (const path of referenced) {
      assert.ok(readdirSync(join(repoRoot, path)).length > 0, `${path} is empty or missing`);
    }
  });
});

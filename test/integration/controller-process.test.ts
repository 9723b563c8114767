// `mcpworks controller` as real child processes against a real control plane with
// kube-controller-manager: leader election and failover, a kill mid-reconcile, garbage collection.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { kubeconfigYaml, startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { repoRoot } from '../harness/paths.ts';
import { Resources } from '../../src/k8s/resources.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { LeaseObject } from '../../src/k8s/leader-election.ts';
import {
  adminClient,
  agentPolicy,
  condition,
  installCrds,
  mcpServer,
  waitFor,
} from './controller-fixtures.ts';

let cp: ControlPlane;
let admin: KubeClient;
const children = new Set<ChildProcess>();

before(async () => {
  cp = await startControlPlane({ controllerManager: true });
  await installCrds(cp.kubeConfig);
  admin = adminClient(cp.kubeConfig);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await cp?.stop();
});

interface RunningController {
  child: ChildProcess;
  identity: () => string | undefined;
  /** Port of /healthz and /readyz once listening. */
  probePort: () => number | undefined;
  exited: Promise<number | null>;
}

function startController(
  leaseNamespace: string,
  name: string,
  kubeconfigPath = cp.kubeconfigPath,
): RunningController {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'src', 'cli', 'main.ts'),
      'controller',
      `--kubeconfig=${kubeconfigPath}`,
      '--leader-elect=true',
      `--leader-election-namespace=${leaseNamespace}`,
      '--lease-duration=2',
      '--renew-deadline=1.5',
      '--retry-period=0.25',
      '--metrics-bind-address=127.0.0.1:0',
      '--health-probe-bind-address=127.0.0.1:0',
      '--resync-period=5',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POD_NAME: name } },
  );
  children.add(child);
  let identity: string | undefined;
  let probePort: number | undefined;
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    const m = /"identity":"([^"]+)"/.exec(out);
    if (m) identity = m[1];
    const p = /"port":(\d+),"msg":"probes listening"/.exec(out);
    if (p) probePort = Number(p[1]);
  });
  child.stderr?.resume();
  const exited = once(child, 'exit').then(([code]) => {
    children.delete(child);
    return code as number | null;
  });
  return { child, identity: () => identity, probePort: () => probePort, exited };
}

const holder = async (ns: string) =>
  (await admin.get<LeaseObject>(Resources.Lease, 'mcpworks-controller', ns))?.spec
    ?.holderIdentity ?? undefined;

async function statusWritten(ns: string, name: string): Promise<boolean> {
  const s = await admin.get<KubeObject>(Resources.McpServer, name, ns);
  return (
    (s?.['status'] as { observedGeneration?: number } | undefined)?.observedGeneration ===
    s?.metadata?.generation
  );
}

test('two controllers elect one leader; when it stops, the other takes over and reconciles', async () => {
  const leaseNs = await cp.newNamespace('lease');
  const a = startController(leaseNs, 'controller-a');
  const b = startController(leaseNs, 'controller-b');
  const first = await waitFor('a lease holder', () => holder(leaseNs));
  assert.ok(first.startsWith('controller-a_') || first.startsWith('controller-b_'));
  const [leader, standby] = first.startsWith('controller-a_') ? [a, b] : [b, a];

  // Both are live; the standby is ready too (readiness does not wait for the lease).
  for (const c of [leader, standby]) {
    const port = await waitFor('probe port', () => c.probePort());
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    await waitFor(
      'ready',
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200,
    );
  }

  const ns = await cp.newNamespace('failover');
  await admin.create(Resources.McpServer, mcpServer(ns, 'before'));
  await waitFor('leader reconciles', () => statusWritten(ns, 'before'));

  leader.child.kill('SIGTERM');
  assert.equal(await leader.exited, 0, 'graceful shutdown exits 0');
  const second = await waitFor('new lease holder', async () => {
    const h = await holder(leaseNs);
    return h && h !== first ? h : undefined;
  });
  assert.ok(second.startsWith(standby === a ? 'controller-a_' : 'controller-b_'));
  await admin.create(Resources.McpServer, mcpServer(ns, 'after'));
  await waitFor('standby reconciles after failover', () => statusWritten(ns, 'after'));
  standby.child.kill('SIGTERM');
  assert.equal(await standby.exited, 0);
});

test('a controller killed mid-reconcile is replaced and everything converges', async () => {
  const leaseNs = await cp.newNamespace('lease');
  const ns = await cp.newNamespace('kill');
  const names = Array.from({ length: 40 }, (_, i) => `s${i}`);
  for (const name of names) await admin.create(Resources.McpServer, mcpServer(ns, name));
  const first = startController(leaseNs, 'victim');
  // Kill as soon as the first child object appears: reconciles are in flight.
  await waitFor(
    'first child',
    () => admin.get(Resources.Secret, 's0-executor-token', ns),
    30_000,
    20,
  );
  first.child.kill('SIGKILL');
  await first.exited;
  const done = await Promise.all(names.map((n) => statusWritten(ns, n)));
  assert.ok(
    done.some((d) => !d),
    'the kill interrupted the work (otherwise this test proves nothing)',
  );
  const second = startController(leaseNs, 'successor');
  await waitFor(
    'all converge',
    async () => (await Promise.all(names.map((n) => statusWritten(ns, n)))).every(Boolean),
    60_000,
    250,
  );
  const deployments = await admin.list(Resources.Deployment, { namespace: ns });
  assert.equal(deployments.items.length, names.length * 2);
  second.child.kill('SIGTERM');
  await second.exited;
});

test('deleting an McpServer garbage-collects its children and its cluster-scoped binding', async () => {
  const leaseNs = await cp.newNamespace('lease');
  const ns = await cp.newNamespace('gc');
  const c = startController(leaseNs, 'gc');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  await waitFor('status', () => statusWritten(ns, 'demo'));
  await waitFor('children', () => admin.get(Resources.Deployment, 'demo-gateway', ns));
  const binding = `mcpworks-gateway.${ns}.demo`;
  assert.ok(await admin.get(Resources.ClusterRoleBinding, binding));
  await admin.delete(Resources.McpServer, 'demo', ns);
  await waitFor(
    'McpServer gone',
    async () => !(await admin.get(Resources.McpServer, 'demo', ns)),
    30_000,
  );
  await waitFor(
    'cluster-scoped binding deleted',
    async () => !(await admin.get(Resources.ClusterRoleBinding, binding)),
    30_000,
  );
  await waitFor(
    'children collected',
    async () => {
      for (const type of [
        Resources.Deployment,
        Resources.Service,
        Resources.Secret,
        Resources.NetworkPolicy,
        Resources.ServiceAccount,
      ]) {
        const left = await admin.list(type, {
          namespace: ns,
          labelSelector: 'app.kubernetes.io/instance=demo',
        });
        if (left.items.length > 0) return false;
      }
      return true;
    },
    60_000,
    250,
  );
  c.child.kill('SIGTERM');
  await c.exited;
});

/** config/rbac with the controller's ServiceAccount moved to `namespace`. */
async function installRbac(namespace: string): Promise<void> {
  const types = {
    ClusterRole: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      plural: 'clusterroles',
      namespaced: false,
    },
    ClusterRoleBinding: Resources.ClusterRoleBinding,
    Role: Resources.Role,
    RoleBinding: Resources.RoleBinding,
    ServiceAccount: Resources.ServiceAccount,
  } as const;
  for (const file of [
    'service_account.yaml',
    'role.yaml',
    'role_binding.yaml',
    'leader_election_role.yaml',
  ]) {
    const text = readFileSync(join(repoRoot, 'config', 'rbac', file), 'utf8').replaceAll(
      'mcpworks-system',
      namespace,
    );
    for (const doc of parseAllDocuments(text)) {
      const obj = doc.toJS() as KubeObject;
      await admin.apply(types[obj.kind as keyof typeof types], obj);
    }
  }
}

test('the controller works with exactly the permissions of config/rbac', async () => {
  const systemNs = await cp.newNamespace('mcpworks-system');
  await installRbac(systemNs);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const token = await core.createNamespacedServiceAccountToken({
    name: 'mcpworks-controller',
    namespace: systemNs,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-rbac-'));
  const kubeconfigPath = join(dir, 'controller.kubeconfig');
  await writeFile(
    kubeconfigPath,
    kubeconfigYaml(cp.server, cp.caCertPem, { token: token.status?.token ?? '' }),
    { mode: 0o600 },
  );

  const ns = await cp.newNamespace('rbac');
  await admin.create(Resources.Secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'keys', namespace: ns },
    stringData: { a: '{}' },
  });
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo', { apiKeysSecret: 'keys' }));
  await admin.create(Resources.AgentPolicy, agentPolicy(ns, 'p'));
  const c = startController(systemNs, 'rbac', kubeconfigPath);
  await waitFor('status written under least privilege', () => statusWritten(ns, 'demo'), 30_000);
  const server = await admin.get<KubeObject>(Resources.McpServer, 'demo', ns);
  assert.equal(
    condition(server, 'Degraded')?.status,
    'False',
    condition(server, 'Degraded')?.message,
  );
  await waitFor('policy accepted', async () =>
    condition(await admin.get(Resources.AgentPolicy, 'p', ns), 'Accepted'),
  );
  assert.ok(await admin.get(Resources.ClusterRoleBinding, `mcpworks-gateway.${ns}.demo`));
  assert.ok(await admin.get(Resources.Deployment, 'demo-executor', ns));
  await admin.delete(Resources.McpServer, 'demo', ns);
  await waitFor(
    'cluster binding deleted under least privilege',
    async () => !(await admin.get(Resources.ClusterRoleBinding, `mcpworks-gateway.${ns}.demo`)),
    30_000,
  );
  c.child.kill('SIGTERM');
  assert.equal(await c.exited, 0);
});

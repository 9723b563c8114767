// The gateway's Kubernetes configuration source, running with the identity and RBAC the
// controller gives a gateway, against a real kube-apiserver: policy changes arrive without a
// restart, and the gateway can read its own Secret and nothing else.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { createController, type Controller } from '../../src/controller/manager.ts';
import { createKubeClient, type KubeClient } from '../../src/k8s/client.ts';
import { Resources } from '../../src/k8s/resources.ts';
import {
  createKubernetesSource,
  type KubernetesSource,
} from '../../src/gateway/source/kubernetes.ts';
import type { GatewaySnapshot } from '../../src/gateway/source/types.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import {
  adminClient,
  agentPolicy,
  installCrds,
  installGatewayClusterRole,
  mcpServer,
  waitFor,
} from './controller-fixtures.ts';

let cp: ControlPlane;
let admin: KubeClient;
let controller: Controller;
const sources: KubernetesSource[] = [];

before(async () => {
  cp = await startControlPlane();
  await installCrds(cp.kubeConfig);
  admin = adminClient(cp.kubeConfig);
  await installGatewayClusterRole(admin);
  controller = createController({
    kubeConfig: cp.kubeConfig,
    logger: silentLogger(),
    recheckMissingInputsMs: 500,
  });
  await controller.start();
});

after(async () => {
  for (const s of sources) await s.stop();
  await controller?.stop();
  await cp?.stop();
});

/** A client with the gateway's own ServiceAccount token, once the controller created its RBAC. */
async function gatewayClient(ns: string, server: string): Promise<KubeClient> {
  await waitFor(
    'gateway RBAC',
    async () =>
      (await admin.get(Resources.ClusterRoleBinding, `mcpworks-gateway.${ns}.${server}`)) &&
      (await admin.get(Resources.RoleBinding, `${server}-gateway`, ns)),
  );
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const token = await core.createNamespacedServiceAccountToken({
    name: `${server}-gateway`,
    namespace: ns,
    body: { spec: { expirationSeconds: 3600 } },
  });
  return createKubeClient(cp.kubeconfigFor({ token: token.status?.token ?? '' }));
}

async function startSource(ns: string, name: string): Promise<KubernetesSource> {
  const source = createKubernetesSource({
    client: await gatewayClient(ns, name),
    namespace: ns,
    name,
    logger: silentLogger(),
    startTimeoutMs: 15_000,
  });
  sources.push(source);
  await source.start();
  return source;
}

const policyCount = (s: GatewaySnapshot) =>
  (s.policySet as unknown as { policies: unknown[] }).policies.length;

test('the gateway source loads its server and follows a policy change without a restart', async () => {
  const ns = await cp.newNamespace('gw');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  const source = await startSource(ns, 'demo');
  const first = source.current();
  assert.equal(first.server.metadata.name, 'demo');
  assert.equal(first.tools[0]?.code, 'print("hi")');
  assert.equal(first.namespaceLabels['kubernetes.io/metadata.name'], ns);
  assert.equal(policyCount(first), 0);
  const changed = new Promise<GatewaySnapshot>((resolve) =>
    source.onChange((s) => policyCount(s) > 0 && resolve(s)),
  );
  const start = performance.now();
  await admin.create(Resources.AgentPolicy, agentPolicy(ns, 'allow'));
  const next = await changed;
  assert.ok(next.revision > first.revision);
  assert.ok(performance.now() - start < 5_000, 'the change arrived within seconds');
});

test('the gateway reads its API-key Secret and picks up a rotated key', async () => {
  const ns = await cp.newNamespace('gw-keys');
  const secret = (value: string) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'keys', namespace: ns },
    stringData: { agent: value },
  });
  await admin.create(Resources.Secret, secret('v1'));
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo', { apiKeysSecret: 'keys' }));
  const source = await startSource(ns, 'demo');
  assert.deepEqual(source.current().apiKeySecretData, { agent: 'v1' });
  await admin.apply(Resources.Secret, {
    ...secret('v2'),
    stringData: undefined,
    data: { agent: Buffer.from('v2').toString('base64') },
  });
  await waitFor('rotated key', () => source.current().apiKeySecretData?.['agent'] === 'v2');
});

test("a gateway's identity cannot read other Secrets of its namespace", async () => {
  const ns = await cp.newNamespace('gw-deny');
  await admin.create(Resources.Secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'other', namespace: ns },
    stringData: { x: 'y' },
  });
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  const client = await gatewayClient(ns, 'demo');
  await assert.rejects(client.get(Resources.Secret, 'other', ns), (e: Error) =>
    /forbidden/i.test(e.message),
  );
  await assert.rejects(client.get(Resources.Secret, 'demo-executor-token', ns), (e: Error) =>
    /forbidden/i.test(e.message),
  );
});

// The controller in-process against a real kube-apiserver (test/harness/controlplane.ts).
/* eslint-disable @typescript-eslint/no-explicit-any -- assertions read deep into API objects */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { createController, type Controller } from '../../src/controller/manager.ts';
import { createControllerMetrics, countWrites } from '../../src/controller/metrics.ts';
import { Resources } from '../../src/k8s/resources.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { silentLogger } from '../../src/shared/logger.ts';
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
let controller: Controller;

before(async () => {
  cp = await startControlPlane();
  await installCrds(cp.kubeConfig);
  admin = adminClient(cp.kubeConfig);
  controller = createController({
    kubeConfig: cp.kubeConfig,
    logger: silentLogger(),
    metrics: createControllerMetrics(),
    recheckMissingInputsMs: 500,
    resyncMs: 1_000,
  });
  await controller.start();
});

after(async () => {
  await controller?.stop();
  await cp?.stop();
});

const get = (type: typeof Resources.Deployment, ns: string, name: string) =>
  admin.get<KubeObject>(type, name, ns);

async function readyServer(ns: string, name: string): Promise<KubeObject> {
  return waitFor(`status of ${ns}/${name}`, async () => {
    const s = await get(Resources.McpServer, ns, name);
    const gen = s?.metadata?.generation;
    const status = s?.['status'] as { observedGeneration?: number } | undefined;
    return status?.observedGeneration === gen ? s : undefined;
  });
}

test('an McpServer gets its gateway and executor workloads, owned, with the right security settings', async () => {
  const ns = await cp.newNamespace('create');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  const server = await readyServer(ns, 'demo');
  const gateway = await waitFor('gateway deployment', () =>
    get(Resources.Deployment, ns, 'demo-gateway'),
  );
  const executor = await waitFor('executor deployment', () =>
    get(Resources.Deployment, ns, 'demo-executor'),
  );
  const owner = gateway.metadata?.ownerReferences?.[0];
  assert.equal(owner?.uid, server.metadata?.uid);
  assert.equal(owner?.controller, true);
  const gwPod = (gateway['spec'] as any).template.spec;
  assert.equal(gwPod.containers[0].securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(gwPod.containers[0].securityContext.capabilities.drop, ['ALL']);
  assert.equal(gwPod.securityContext.runAsNonRoot, true);
  const exPod = (executor['spec'] as any).template.spec;
  assert.equal(exPod.automountServiceAccountToken, false);
  assert.deepEqual(exPod.containers[0].securityContext.capabilities.add, [
    'SYS_ADMIN',
    'SETUID',
    'SETGID',
    'SYS_CHROOT',
  ]);
  assert.equal(exPod.hostUsers, undefined, 'Standard security mode by default');
  for (const [type, name] of [
    [Resources.Service, 'demo-gateway'],
    [Resources.Service, 'demo-executor'],
    [Resources.ServiceAccount, 'demo-gateway'],
    [Resources.Secret, 'demo-executor-token'],
    [Resources.NetworkPolicy, 'demo-executor'],
    [Resources.NetworkPolicy, 'demo-gateway'],
    [Resources.Role, 'demo-gateway'],
    [Resources.RoleBinding, 'demo-gateway'],
  ] as const) {
    assert.ok(await get(type, ns, name), `${type.kind} ${name} exists`);
  }
  const netpol = (await get(Resources.NetworkPolicy, ns, 'demo-executor')) as any;
  assert.equal((netpol.spec.egress ?? []).length, 0, 'no egress rule: all egress denied');
  assert.deepEqual(netpol.spec.policyTypes, ['Ingress', 'Egress']);
  assert.equal(condition(server, 'Progressing')?.status, 'True');
  assert.equal(condition(server, 'Ready')?.status, 'False');
  assert.equal((server['status'] as any).tools, 1);
});

test('each executor security mode gives a Deployment the API server accepts', async () => {
  const ns = await cp.newNamespace('modes');
  const expect: Record<string, (pod: any) => void> = {
    UserNamespace: (pod) => {
      assert.equal(pod.hostUsers, false);
      assert.equal(pod.containers[0].securityContext.procMount, 'Unmasked');
    },
    Privileged: (pod) => assert.equal(pod.containers[0].securityContext.privileged, true),
  };
  for (const [mode, check] of Object.entries(expect)) {
    const name = mode.toLowerCase();
    const server = mcpServer(ns, name) as any;
    server.spec.executor = { securityMode: mode };
    await admin.create(Resources.McpServer, server);
    const executor = await waitFor(`${mode} executor deployment`, () =>
      get(Resources.Deployment, ns, `${name}-executor`),
    );
    check((executor['spec'] as any).template.spec);
  }
  const bad = mcpServer(ns, 'bad') as any;
  bad.spec.executor = { securityMode: 'Root' };
  await assert.rejects(admin.create(Resources.McpServer, bad), /securityMode|Unsupported value/);
});

test('a tool change changes the gateway pod template hash (a rollout)', async () => {
  const ns = await cp.newNamespace('rollout');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  await readyServer(ns, 'demo');
  const hashOf = async () =>
    ((await get(Resources.Deployment, ns, 'demo-gateway')) as any)?.spec.template.metadata
      .annotations['mcpworks.io/spec-hash'];
  const before = await waitFor('gateway hash', hashOf);
  await admin.apply(
    Resources.McpServer,
    mcpServer(ns, 'demo', { tools: [{ name: 'echo', code: 'print("changed")' }] }),
  );
  const after = await waitFor('new hash', async () => {
    const h = await hashOf();
    return h !== before ? h : undefined;
  });
  assert.notEqual(after, before);
});

test('drift on a child is reverted', async () => {
  const ns = await cp.newNamespace('drift');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  await readyServer(ns, 'demo');
  const dep = await waitFor('gateway', () => get(Resources.Deployment, ns, 'demo-gateway'));
  (dep['spec'] as any).replicas = 7;
  (dep['spec'] as any).template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;
  await admin.update(Resources.Deployment, dep);
  const reverted = await waitFor('drift reverted', async () => {
    const d = (await get(Resources.Deployment, ns, 'demo-gateway')) as any;
    return d.spec.replicas === 2 &&
      d.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem === true
      ? d
      : undefined;
  });
  assert.equal(reverted.spec.replicas, 2);
  const events = await admin.list<KubeObject>(Resources.Event, { namespace: ns });
  assert.ok(
    events.items.some(
      (e) => e['reason'] === 'Updated' && String(e['message']).includes('Deployment demo-gateway'),
    ),
    'an Event says the controller changed the Deployment back',
  );
});

test('the rotation annotation replaces the executor token and rolls both workloads', async () => {
  const ns = await cp.newNamespace('rotate');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  await readyServer(ns, 'demo');
  const tokenOf = async () =>
    ((await get(Resources.Secret, ns, 'demo-executor-token')) as any)?.data?.token;
  const hashOf = async (name: string) =>
    ((await get(Resources.Deployment, ns, name)) as any)?.spec.template.metadata.annotations[
      'mcpworks.io/spec-hash'
    ];
  const before = {
    token: await waitFor('token', tokenOf),
    gateway: await hashOf('demo-gateway'),
    executor: await hashOf('demo-executor'),
  };
  const rotated = mcpServer(ns, 'demo');
  rotated.metadata = {
    ...rotated.metadata,
    annotations: { 'mcpworks.io/rotate-executor-token': '2026-01-01' },
  };
  await admin.apply(Resources.McpServer, rotated);
  const token = await waitFor('new token', async () => {
    const t = await tokenOf();
    return t !== before.token ? t : undefined;
  });
  // A printable token (it goes into an Authorization header): 32 random bytes, base64url.
  assert.match(Buffer.from(token, 'base64').toString('utf8'), /^[A-Za-z0-9_-]{43}$/);
  await waitFor(
    'both workloads roll',
    async () =>
      (await hashOf('demo-gateway')) !== before.gateway &&
      (await hashOf('demo-executor')) !== before.executor,
  );
});

test('a missing API-key Secret makes the server Degraded with a clear message, and it recovers', async () => {
  const ns = await cp.newNamespace('secret');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo', { apiKeysSecret: 'keys' }));
  const degraded = await waitFor('Degraded', async () => {
    const s = await get(Resources.McpServer, ns, 'demo');
    return condition(s, 'Degraded')?.status === 'True' ? s : undefined;
  });
  assert.equal(condition(degraded, 'Degraded')?.message, `Secret ${ns}/keys not found`);
  assert.equal(condition(degraded, 'Degraded')?.reason, 'SecretNotFound');
  await admin.create(Resources.Secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'keys', namespace: ns },
    stringData: { a: '{}' },
  });
  const recovered = await waitFor('recovered', async () => {
    const s = await get(Resources.McpServer, ns, 'demo');
    return condition(s, 'Degraded')?.status === 'False' ? s : undefined;
  });
  assert.equal(condition(recovered, 'Degraded')?.reason, 'AsExpected');
});

test('an audit signing key Secret is mounted into the gateway pods; missing or invalid, the server is Degraded', async () => {
  const ns = await cp.newNamespace('signing');
  const manifest = mcpServer(ns, 'demo') as any;
  manifest.spec.audit = { signingKeySecretRef: { name: 'audit-key' } };
  await admin.create(Resources.McpServer, manifest);
  const stored = (await get(Resources.McpServer, ns, 'demo')) as any;
  assert.equal(
    stored.spec.audit.signingKeySecretRef.key,
    'ed25519.key',
    'the CRD defaults the key',
  );
  const gateway = await waitFor('gateway deployment', () =>
    get(Resources.Deployment, ns, 'demo-gateway'),
  );
  const pod = (gateway['spec'] as any).template.spec;
  const volume = pod.volumes.find((v: any) => v.name === 'audit-signing-key');
  assert.deepEqual(volume.secret, {
    secretName: 'audit-key',
    items: [{ key: 'ed25519.key', path: 'ed25519.key' }],
    defaultMode: 0o440,
    optional: false,
  });
  const container = pod.containers[0];
  assert.deepEqual(
    container.volumeMounts.find((m: any) => m.name === 'audit-signing-key'),
    { name: 'audit-signing-key', mountPath: '/etc/mcpworks/audit-signing', readOnly: true },
  );
  assert.ok(container.args.includes('--audit-signing-key=/etc/mcpworks/audit-signing/ed25519.key'));
  assert.equal(pod.securityContext.fsGroup, 65532);

  const degradedWith = (reason: string) =>
    waitFor(`Degraded ${reason}`, async () => {
      const s = await get(Resources.McpServer, ns, 'demo');
      return condition(s, 'Degraded')?.reason === reason ? s : undefined;
    });
  const missing = await degradedWith('SecretNotFound');
  assert.match(
    condition(missing, 'Degraded')?.message ?? '',
    /Secret \S+\/audit-key \(spec\.audit\.signingKeySecretRef\) not found/,
  );
  const { generateKeyPairSync } = await import('node:crypto');
  const pem = (key: { export(o: object): string | Buffer }) =>
    String(key.export({ format: 'pem', type: 'pkcs8' }));
  await admin.create(Resources.Secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'audit-key', namespace: ns },
    stringData: {
      'ed25519.key': pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
    },
  });
  const invalid = await degradedWith('InvalidSigningKey');
  assert.match(condition(invalid, 'Degraded')?.message ?? '', /is not an Ed25519 private key/);
  await admin.delete(Resources.Secret, 'audit-key', ns);
  await admin.create(Resources.Secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'audit-key', namespace: ns },
    stringData: { 'ed25519.key': pem(generateKeyPairSync('ed25519').privateKey) },
  });
  const recovered = await degradedWith('AsExpected');
  assert.equal(condition(recovered, 'Degraded')?.status, 'False');
});

test('an invalid policy is not Accepted and a valid one beside it is', async () => {
  const ns = await cp.newNamespace('policy');
  await admin.create(Resources.AgentPolicy, agentPolicy(ns, 'good', ['args.x == 1']));
  await admin.create(Resources.AgentPolicy, agentPolicy(ns, 'bad', ['args.x ==']));
  const bad = await waitFor('bad policy status', async () => {
    const p = await get(Resources.AgentPolicy, ns, 'bad');
    return condition(p, 'Accepted') ? p : undefined;
  });
  const good = await waitFor('good policy status', async () => {
    const p = await get(Resources.AgentPolicy, ns, 'good');
    return condition(p, 'Accepted') ? p : undefined;
  });
  assert.equal(condition(bad, 'Accepted')?.status, 'False');
  assert.match(condition(bad, 'Accepted')?.message ?? '', /spec\.rules\[0\]\.conditions\[0\]/);
  assert.equal(condition(good, 'Accepted')?.status, 'True');
});

test('the policies that select a server are listed in its status', async () => {
  const ns = await cp.newNamespace('policies');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  await admin.create(Resources.AgentPolicy, agentPolicy(ns, 'all-servers'));
  const server = await waitFor('policies in status', async () => {
    const s = await get(Resources.McpServer, ns, 'demo');
    return ((s?.['status'] as any)?.policies ?? []).includes(`AgentPolicy ${ns}/all-servers`)
      ? s
      : undefined;
  });
  assert.ok(server);
});

test('a steady state writes nothing over several resyncs', async () => {
  const ns = await cp.newNamespace('steady');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  await admin.create(Resources.AgentPolicy, agentPolicy(ns, 'p'));
  await readyServer(ns, 'demo');
  await waitFor('policy accepted', async () =>
    condition(await get(Resources.AgentPolicy, ns, 'p'), 'Accepted'),
  );
  // Let the creation settle (child watch events re-trigger reconciles), then count.
  await new Promise((r) => setTimeout(r, 1_500));
  await controller.idle();
  const before = await countWrites(controller.metrics);
  const reconcilesBefore = (await controller.metrics.reconcileTotal.get()).values.reduce(
    (s, v) => s + v.value,
    0,
  );
  await new Promise((r) => setTimeout(r, 3_500)); // three resyncs at resyncMs = 1 s
  await controller.idle();
  const reconcilesAfter = (await controller.metrics.reconcileTotal.get()).values.reduce(
    (s, v) => s + v.value,
    0,
  );
  assert.ok(reconcilesAfter - reconcilesBefore >= 3, 'resyncs reconciled again');
  assert.equal((await countWrites(controller.metrics)) - before, 0);
});

test('the executor Service is headless; the gateway Service has a ClusterIP', async () => {
  const ns = await cp.newNamespace('headless');
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  await readyServer(ns, 'demo');
  const executor = (await get(Resources.Service, ns, 'demo-executor')) as any;
  const gateway = (await get(Resources.Service, ns, 'demo-gateway')) as any;
  assert.equal(executor.spec.clusterIP, 'None');
  assert.match(gateway.spec.clusterIP, /^\d+\.\d+\.\d+\.\d+$/);
});

test('an executor Service created with a ClusterIP by an earlier version keeps it and converges', async () => {
  const ns = await cp.newNamespace('legacy-svc');
  const legacy = await admin.create<KubeObject>(Resources.Service, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'demo-executor',
      namespace: ns,
      labels: { 'app.kubernetes.io/managed-by': 'mcpworks-controller' },
    },
    spec: { type: 'ClusterIP', selector: { a: 'b' }, ports: [{ name: 'http', port: 8081 }] },
  });
  const ip = (legacy as any).spec.clusterIP;
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo'));
  await readyServer(ns, 'demo');
  const executor = (await get(Resources.Service, ns, 'demo-executor')) as any;
  assert.equal(executor.spec.clusterIP, ip);
  assert.equal(executor.metadata.ownerReferences?.[0]?.kind, 'McpServer');
  assert.equal(executor.spec.selector['app.kubernetes.io/component'], 'executor');
});

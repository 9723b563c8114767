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
  // The Event is written after the revert (the recorder does not block the reconcile).
  await waitFor('an Event says the controller changed the Deployment back', async () => {
    const events = await admin.list<KubeObject>(Resources.Event, { namespace: ns });
    return events.items.some(
      (e) => e['reason'] === 'Updated' && String(e['message']).includes('Deployment demo-gateway'),
    );
  });
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

const secretEnv = (name: string, secret: string, key: string) => ({
  name,
  secretKeyRef: { name: secret, key },
});

const degradedWith = (ns: string, name: string, reason: string) =>
  waitFor(`Degraded ${reason}`, async () => {
    const s = await get(Resources.McpServer, ns, name);
    return condition(s, 'Degraded')?.reason === reason ? s : undefined;
  });

const secretOf = (ns: string, name: string, data: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: ns },
  stringData: data,
});

test('secretEnv: the executor mounts only the referenced keys, optional and read-only, and gets --secrets-dir', async () => {
  const ns = await cp.newNamespace('secretenv');
  await admin.create(
    Resources.McpServer,
    mcpServer(ns, 'demo', {
      tools: [
        { name: 'issues', secretEnv: [secretEnv('GITHUB_TOKEN', 'github', 'token')] },
        {
          name: 'report',
          secretEnv: [
            secretEnv('GH', 'github', 'token'),
            secretEnv('DB_PASSWORD', 'db.creds', 'password'),
          ],
        },
        { name: 'plain' },
      ],
    }),
  );
  // Neither Secret exists: the executor is deployed all the same (optional volumes).
  const executor = await waitFor('executor deployment', () =>
    get(Resources.Deployment, ns, 'demo-executor'),
  );
  const pod = (executor['spec'] as any).template.spec;
  const secretVolumes = pod.volumes.filter((v: any) => v.secret);
  assert.deepEqual(
    secretVolumes.map((v: any) => v.secret),
    [
      {
        secretName: 'db.creds',
        items: [{ key: 'password', path: 'password' }],
        defaultMode: 0o400,
        optional: true,
      },
      {
        secretName: 'github',
        items: [{ key: 'token', path: 'token' }],
        defaultMode: 0o400,
        optional: true,
      },
    ],
  );
  for (const v of secretVolumes) assert.match(v.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  const container = pod.containers[0];
  const mounts = container.volumeMounts.filter((m: any) => m.name.startsWith('secret-'));
  assert.deepEqual(
    mounts.map((m: any) => [m.mountPath, m.readOnly, m.subPath]),
    [
      ['/var/run/mcpworks/secrets/db.creds', true, undefined],
      ['/var/run/mcpworks/secrets/github', true, undefined],
    ],
  );
  assert.ok(container.args.includes('--secrets-dir=/var/run/mcpworks/secrets'));
  assert.equal(pod.automountServiceAccountToken, false);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
});

test('a missing secretEnv Secret or key makes the server Degraded naming tool, variable, Secret and key; it recovers', async () => {
  const ns = await cp.newNamespace('secretenv-missing');
  await admin.create(
    Resources.McpServer,
    mcpServer(ns, 'demo', {
      tools: [
        { name: 'issues', secretEnv: [secretEnv('GITHUB_TOKEN', 'github', 'token')] },
        { name: 'plain' },
      ],
    }),
  );
  const missing = await degradedWith(ns, 'demo', 'SecretNotFound');
  assert.equal(
    condition(missing, 'Degraded')?.message,
    `Secret ${ns}/github (secretEnv GITHUB_TOKEN of tool issues) not found: calls of these tools fail until it exists`,
  );
  assert.ok(
    await get(Resources.Deployment, ns, 'demo-executor'),
    'the other tools keep serving: the server deploys',
  );
  const VALUE = 'ghp_integration-secret-value';
  await admin.create(Resources.Secret, secretOf(ns, 'github', { user: VALUE }));
  const noKey = await degradedWith(ns, 'demo', 'SecretKeyNotFound');
  assert.equal(
    condition(noKey, 'Degraded')?.message,
    `Secret ${ns}/github has no key "token" (secretEnv GITHUB_TOKEN of tool issues): calls of these tools fail until it exists`,
  );
  await admin.apply(Resources.Secret, secretOf(ns, 'github', { user: VALUE, token: VALUE }));
  const recovered = await degradedWith(ns, 'demo', 'AsExpected');
  assert.equal(condition(recovered, 'Degraded')?.status, 'False');
  // Never a value in the status or an Event.
  const events = await admin.list<KubeObject>(Resources.Event, { namespace: ns });
  const text = JSON.stringify([recovered['status'], missing['status'], noKey['status'], events]);
  assert.ok(!text.includes(VALUE) && !text.includes(Buffer.from(VALUE).toString('base64')));
  assert.ok(
    events.items.some((e) => e['reason'] === 'SecretKeyNotFound'),
    'the problem was an Event too',
  );
});

test('tool egress: the executor NetworkPolicy admits cluster DNS and the declared ports to public addresses only; without egress, none', async () => {
  const ns = await cp.newNamespace('egress');
  const tools = [
    { name: 'gh', egress: [{ host: 'api.github.com' }] },
    { name: 'db', egress: [{ host: '*.db.example.com', ports: [5432, 443] }] },
    { name: 'plain' },
  ];
  await admin.create(Resources.McpServer, mcpServer(ns, 'demo', { tools }));
  const policy = await waitFor('egress rules', async () => {
    const p = (await get(Resources.NetworkPolicy, ns, 'demo-executor')) as any;
    return (p?.spec.egress ?? []).length > 0 ? p : undefined;
  });
  const [dns, out] = policy.spec.egress;
  assert.deepEqual(dns, {
    to: [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
        podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
      },
    ],
    ports: [
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ],
  });
  assert.deepEqual(
    out.ports.map((p: any) => [p.protocol, p.port]),
    [
      ['TCP', 443],
      ['TCP', 5432],
    ],
  );
  assert.deepEqual(
    out.to.map((t: any) => t.ipBlock.cidr),
    ['0.0.0.0/0', '::/0'],
  );
  for (const blocked of ['10.0.0.0/8', '169.254.0.0/16', '100.64.0.0/10', '127.0.0.0/8'])
    assert.ok(out.to[0].ipBlock.except.includes(blocked), blocked);
  for (const blocked of ['fc00::/7', 'fe80::/10'])
    assert.ok(out.to[1].ipBlock.except.includes(blocked), blocked);
  assert.equal(policy.spec.ingress.length, 1, 'ingress unchanged: its gateway only');

  // An update, not an apply: the egress fields were set by the create (another manager entry).
  const stored = (await get(Resources.McpServer, ns, 'demo')) as any;
  for (const tool of stored.spec.tools) delete tool.egress;
  await admin.update(Resources.McpServer, stored);
  const closed = await waitFor('egress removed', async () => {
    const p = (await get(Resources.NetworkPolicy, ns, 'demo-executor')) as any;
    return p && (p.spec.egress ?? []).length === 0 ? p : undefined;
  });
  assert.deepEqual(closed.spec.policyTypes, ['Ingress', 'Egress']);
});

test('spec.executor.image becomes the executor container image, every other pod setting unchanged', async () => {
  const ns = await cp.newNamespace('image');
  const image = 'registry.example.com/team/sandbox-extra:1.2.3';
  await admin.create(Resources.McpServer, mcpServer(ns, 'custom', { executorImage: image }));
  await admin.create(Resources.McpServer, mcpServer(ns, 'default'));
  const podOf = async (name: string) =>
    (
      (await waitFor(`${name} executor`, () =>
        get(Resources.Deployment, ns, `${name}-executor`),
      )) as any
    ).spec.template.spec;
  const custom = await podOf('custom');
  const plain = await podOf('default');
  assert.equal(custom.containers[0].image, image);
  assert.equal(plain.containers[0].image, 'mcpworks/sandbox:0.1.0');
  // The same container otherwise (env differs by the token Secret's name only).
  const { image: _a, env: _c, ...customRest } = custom.containers[0];
  const { image: _b, env: _d, ...plainRest } = plain.containers[0];
  assert.deepEqual(customRest, plainRest);
  assert.deepEqual(custom.securityContext, plain.securityContext);
});

test('a server with secretEnv, egress and its own executor image writes nothing once converged', async () => {
  const ns = await cp.newNamespace('steady-tools');
  await admin.create(Resources.Secret, secretOf(ns, 'github', { token: 't' }));
  await admin.create(
    Resources.McpServer,
    mcpServer(ns, 'demo', {
      executorImage: 'registry.example.com/team/sandbox-extra:1',
      tools: [
        {
          name: 'issues',
          secretEnv: [secretEnv('GITHUB_TOKEN', 'github', 'token')],
          egress: [{ host: 'api.github.com', ports: [443, 8443] }],
        },
      ],
    }),
  );
  await readyServer(ns, 'demo');
  await degradedWith(ns, 'demo', 'AsExpected');
  await new Promise((r) => setTimeout(r, 1_500));
  await controller.idle();
  const before = await countWrites(controller.metrics);
  await new Promise((r) => setTimeout(r, 3_500)); // three resyncs at resyncMs = 1 s
  await controller.idle();
  assert.equal((await countWrites(controller.metrics)) - before, 0);
});

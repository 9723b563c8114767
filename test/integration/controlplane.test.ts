// Proves the test control plane: real kube-apiserver + etcd (+ kube-controller-manager).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import {
  ApiException,
  AppsV1Api,
  AuthenticationV1Api,
  CoreV1Api,
  Watch,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { eventually } from '../harness/wait.ts';

const AUDIENCE = 'mcpworks-test';

const isNotFound = (err: unknown) => err instanceof ApiException && err.code === 404;

function configMap(name: string, data: Record<string, string>, extra: Partial<V1ConfigMap> = {}) {
  return { metadata: { name, ...extra.metadata }, data } satisfies V1ConfigMap;
}

describe('control plane without controllers', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  before(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
  });
  after(() => cp?.stop());

  test('newNamespace creates a uniquely named namespace', async () => {
    const [a, b] = [await cp.newNamespace('cp'), await cp.newNamespace('cp')];
    assert.notEqual(a, b);
    assert.match(a, /^cp-[0-9a-f]{8}$/);
    const read = await core.readNamespace({ name: a });
    assert.equal(read.metadata?.name, a);
  });

  test('a ConfigMap is stored and read back', async () => {
    const namespace = await cp.newNamespace('cm');
    await core.createNamespacedConfigMap({ namespace, body: configMap('settings', { a: '1' }) });
    const read = await core.readNamespacedConfigMap({ namespace, name: 'settings' });
    assert.deepEqual(read.data, { a: '1' });
  });

  test('a Secret is stored and read back', async () => {
    const namespace = await cp.newNamespace('secret');
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'keys' }, stringData: { apiKey: 's3cret' } },
    });
    const read = await core.readNamespacedSecret({ namespace, name: 'keys' });
    assert.equal(Buffer.from(read.data?.apiKey ?? '', 'base64').toString(), 's3cret');
  });

  test('a watch receives an update', async () => {
    const namespace = await cp.newNamespace('watch');
    const created = await core.createNamespacedConfigMap({
      namespace,
      body: configMap('watched', { v: '1' }),
    });
    const events: { type: string; obj: V1ConfigMap }[] = [];
    let watchError: unknown;
    const controller = await new Watch(cp.kubeConfig).watch(
      `/api/v1/namespaces/${namespace}/configmaps`,
      { resourceVersion: created.metadata?.resourceVersion },
      (type, obj: V1ConfigMap) => events.push({ type, obj }),
      (err) => (watchError = err),
    );
    try {
      await core.replaceNamespacedConfigMap({
        namespace,
        name: 'watched',
        body: { ...created, data: { v: '2' } },
      });
      const update = await eventually('the MODIFIED event', async () =>
        events.find((e) => e.type === 'MODIFIED'),
      );
      assert.equal(update.obj.data?.v, '2');
      assert.equal(watchError, undefined);
    } finally {
      controller.abort();
    }
  });

  describe('ServiceAccount tokens', () => {
    async function serviceAccountToken(namespace: string, name: string, audiences: string[]) {
      await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
      const res = await core.createNamespacedServiceAccountToken({
        namespace,
        name,
        body: { spec: { audiences, expirationSeconds: 600 } },
      });
      const token = res.status?.token;
      assert.ok(token, 'TokenRequest returned no token');
      return token;
    }
    const review = (token: string, audiences: string[]) =>
      cp.kubeConfig
        .makeApiClient(AuthenticationV1Api)
        .createTokenReview({ body: { spec: { token, audiences } } });

    test('a TokenRequest token is validated by TokenReview with its audience', async () => {
      const namespace = await cp.newNamespace('sa');
      const token = await serviceAccountToken(namespace, 'agent', [AUDIENCE]);
      const res = await review(token, [AUDIENCE]);
      assert.equal(res.status?.authenticated, true, res.status?.error);
      assert.equal(res.status?.user?.username, `system:serviceaccount:${namespace}:agent`);
      assert.deepEqual(res.status?.audiences, [AUDIENCE]);
      assert.ok(res.status?.user?.groups?.includes(`system:serviceaccounts:${namespace}`));
    });

    test('the token carries the configured issuer', async () => {
      const namespace = await cp.newNamespace('sa');
      const token = await serviceAccountToken(namespace, 'agent', [AUDIENCE]);
      const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString());
      assert.equal(payload.iss, cp.serviceAccountIssuer);
      assert.deepEqual(payload.aud, [AUDIENCE]);
    });

    test('TokenReview rejects the token for another audience', async () => {
      const namespace = await cp.newNamespace('sa');
      const token = await serviceAccountToken(namespace, 'agent', [AUDIENCE]);
      const res = await review(token, ['someone-else']);
      assert.notEqual(res.status?.authenticated, true);
      assert.ok(res.status?.error, 'a rejected TokenReview names its reason');
    });

    test('TokenReview rejects a token with a forged signature', async () => {
      const namespace = await cp.newNamespace('sa');
      const token = await serviceAccountToken(namespace, 'agent', [AUDIENCE]);
      const [header, payload] = token.split('.');
      const forged = `${header}.${payload}.${Buffer.from('not the signature').toString('base64url')}`;
      const res = await review(forged, [AUDIENCE]);
      assert.notEqual(res.status?.authenticated, true);
      assert.ok(res.status?.error, 'a rejected TokenReview names its reason');
    });

    test('RBAC forbids a ServiceAccount without a role to list Secrets', async () => {
      const namespace = await cp.newNamespace('rbac');
      // An API-audience token so the apiserver itself accepts it.
      const token = await serviceAccountToken(namespace, 'nobody', [cp.serviceAccountIssuer]);
      const asNobody = cp.kubeconfigFor({ token }).makeApiClient(CoreV1Api);
      await assert.rejects(
        asNobody.listNamespacedSecret({ namespace }),
        (err) => err instanceof ApiException && err.code === 403,
      );
    });
  });
});

describe('control plane with kube-controller-manager', () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane({ controllerManager: true });
  });
  after(() => cp?.stop());

  test('a Deployment gets a ReplicaSet', async () => {
    const namespace = await cp.newNamespace('deploy');
    const apps = cp.kubeConfig.makeApiClient(AppsV1Api);
    const labels = { app: 'web' };
    const deployment = await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: { containers: [{ name: 'web', image: 'example.invalid/web:1' }] },
          },
        },
      },
    });
    const rs = await eventually('a ReplicaSet owned by the Deployment', async () => {
      const list = await apps.listNamespacedReplicaSet({ namespace });
      return list.items.find((r) =>
        r.metadata?.ownerReferences?.some((o) => o.uid === deployment.metadata?.uid),
      );
    });
    assert.equal(rs.spec?.replicas, 1);
  });

  test('an owned ConfigMap is garbage-collected when its owner is deleted', async () => {
    const namespace = await cp.newNamespace('gc');
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const owner = await core.createNamespacedConfigMap({ namespace, body: configMap('owner', {}) });
    const ownerReferences = [
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' },
    ];
    await core.createNamespacedConfigMap({
      namespace,
      body: configMap('child', {}, { metadata: { name: 'child', ownerReferences } }),
    });
    await core.deleteNamespacedConfigMap({ namespace, name: 'owner' });
    await eventually('the child to be deleted', async () => {
      try {
        await core.readNamespacedConfigMap({ namespace, name: 'child' });
        return undefined;
      } catch (err) {
        if (isNotFound(err)) return true;
        throw err;
      }
    });
  });

  test('stop() ends the control plane and removes its directory', async () => {
    const { dir, server } = cp;
    assert.ok(existsSync(dir));
    await cp.stop();
    assert.equal(existsSync(dir), false);
    await assert.rejects(fetch(`${server}/readyz`, { signal: AbortSignal.timeout(2000) }));
  });
});

test('a missing binary fails with a hint to run make components', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'mcpworks-nobin-'));
  try {
    await assert.rejects(startControlPlane({ binDir: empty }), /make components/);
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

describe('teardown without stop()', () => {
  const harness = new URL('../harness/controlplane.ts', import.meta.url).href;

  /** Starts a control plane in a child node process that `then`s as given; returns what it had. */
  async function childControlPlane(then: 'exit' | 'hang') {
    const script = `
      import { readFileSync } from 'node:fs';
      import { startControlPlane } from ${JSON.stringify(harness)};
      const cp = await startControlPlane();
      const pids = readFileSync(cp.dir + '/.pgids', 'utf8').trim().split('\\n').map(Number);
      console.log(JSON.stringify({ dir: cp.dir, pids }));
      if (${JSON.stringify(then)} === 'exit') process.exit(0);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let line: string | undefined;
    for await (const l of createInterface({ input: child.stdout! })) {
      line = l;
      break;
    }
    assert.ok(line, 'the child printed nothing');
    return { child, exited, ...(JSON.parse(line) as { dir: string; pids: number[] }) };
  }

  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  test('process exit kills the components and removes the directory', async () => {
    const { dir, pids, exited } = await childControlPlane('exit');
    await exited;
    assert.equal(pids.length, 2);
    assert.equal(existsSync(dir), false);
    await eventually('the components to die', async () => (pids.some(alive) ? undefined : true), {
      timeoutMs: 5000,
    });
  });

  test('SIGKILL of the test process still kills the components and removes the directory', async () => {
    const { child, dir, pids, exited } = await childControlPlane('hang');
    assert.ok(pids.every(alive));
    child.kill('SIGKILL');
    await exited;
    // The reaper polls once a second and gives SIGTERM two seconds before SIGKILL.
    await eventually(
      'the reaper to clean up',
      async () => (pids.some(alive) || existsSync(dir) ? undefined : true),
      { timeoutMs: 15_000 },
    );
  });
});

// Least privilege, proven against a real API server with RBAC enforced:
//
// 1. The controller runs under the chart's own ServiceAccount (a TokenRequest token, not an
//    admin identity) with the chart's ClusterRole and leader-election Role, through a full
//    create / update / delete cycle of an McpServer and an AgentPolicy: children applied,
//    status written, an Event recorded, the cluster-scoped binding removed after the delete.
// 2. For every rule of those roles, a copy without that one rule makes the API server refuse a
//    request the controller makes for that rule's resources (no rule is unused).
//
// The observable for (2): the controller talks to the API server through a recording loopback
// proxy (plain forwarding, the ServiceAccount token untouched, so RBAC is still the API server's),
// which notes every 403 by `group/resource[/subresource]`. The API server does not count
// authorization refusals in its request metrics, so the proxy is the cheapest reliable witness.
// A variant ends as soon as the refusal for the removed rule appears (short polls), instead of
// waiting out a whole cycle.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  KubeConfig,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { createController, type Controller } from '../../src/controller/manager.ts';
import { createLogger, silentLogger } from '../../src/shared/logger.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { repoRoot } from '../harness/paths.ts';
import {
  applyCrds,
  chartDir,
  helmTemplate,
  kubectlApply,
  parseObjects,
  permissions,
  toYamlStream,
  yamlFiles,
  type K8sObject,
  type PolicyRule,
} from './chart-support.ts';

const RELEASE_NAMESPACE = 'mcpworks-system';
const GROUP = 'mcpworks.io';
const VERSION = 'v1alpha1';
/** Deadline for one step of the cycle; generous, since every wait ends as soon as it can. */
const STEP_MS = 20_000;

let cp: ControlPlane;
let chartObjects: K8sObject[];
let serviceAccountToken: string;
let proxy: RecordingProxy;

function only(kind: string): K8sObject {
  const found = chartObjects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `the chart renders ${found.length} ${kind}s`);
  return found[0]!;
}

/** The chart's controller ClusterRole (the gateway's shared read-only ClusterRole is another). */
function controllerClusterRole(): K8sObject {
  const binding = only('ClusterRoleBinding');
  const name = (binding as unknown as { roleRef: { name: string } }).roleRef.name;
  const role = chartObjects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === name);
  assert.ok(role, `ClusterRole ${name} is not rendered`);
  return role;
}

before(async () => {
  // Many clusters enforce that setting a blocking ownerReference needs update on the owner's
  // finalizers; enabling it here is what makes the `mcpservers/finalizers` rule provable.
  cp = await startControlPlane({ admissionPlugins: ['OwnerReferencesPermissionEnforcement'] });
  await applyCrds(
    cp,
    yamlFiles(join(chartDir, 'crds'))
      .map((f) => f.text)
      .join('\n---\n'),
  );
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: RELEASE_NAMESPACE } } });
  chartObjects = parseObjects(await helmTemplate({ namespace: RELEASE_NAMESPACE }));
  const rbacKinds = new Set([
    'ServiceAccount',
    'ClusterRole',
    'ClusterRoleBinding',
    'Role',
    'RoleBinding',
  ]);
  const applied = await kubectlApply(
    cp,
    toYamlStream(chartObjects.filter((o) => rbacKinds.has(o.kind))),
  );
  assert.equal(applied.code, 0, applied.stderr);
  const sa = only('ServiceAccount').metadata.name;
  const token = await core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: RELEASE_NAMESPACE,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  assert.ok(token.status?.token, 'TokenRequest returned no token');
  serviceAccountToken = token.status.token;
  proxy = await startRecordingProxy();
});
after(async () => {
  await proxy?.close();
  await cp?.stop();
});

// ---------------------------------------------------------------------------------------------
// Observables

/** `group/resource[/subresource]` of an API path, as RBAC names it. */
export function resourceOfPath(path: string): string {
  const parts = new URL(path, 'http://x').pathname.split('/').filter(Boolean);
  let group: string;
  let rest: string[];
  if (parts[0] === 'api') [group, rest] = ['', parts.slice(2)];
  else if (parts[0] === 'apis') [group, rest] = [parts[1] ?? '', parts.slice(3)];
  else return `url:${path}`;
  const [resource, , subresource] =
    rest[0] === 'namespaces' && rest.length >= 3 ? rest.slice(2) : rest;
  return [group, resource ?? '', ...(subresource ? [subresource] : [])].join('/');
}

interface RecordingProxy {
  /** A kubeconfig for `token` that reaches the API server through the proxy. */
  kubeConfigFor(token: string): KubeConfig;
  /** Every refused request since the last reset, as `group/resource[/subresource]`. */
  forbidden: string[];
  close(): Promise<void>;
}

/** A loopback HTTP proxy to the API server that records every 403 it forwards. */
async function startRecordingProxy(): Promise<RecordingProxy> {
  const target = new URL(cp.server);
  const forbidden: string[] = [];
  const server = createServer((req, res) => {
    const upstream = httpsRequest(
      new URL(req.url ?? '/', target),
      { method: req.method, headers: { ...req.headers, host: target.host }, ca: cp.caCertPem },
      (up) => {
        if (up.statusCode === 403) forbidden.push(resourceOfPath(req.url ?? '/'));
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    forbidden,
    kubeConfigFor(token) {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        // Plain HTTP on loopback to the proxy (client-node wants skipTLSVerify for http://); the
        // proxy verifies the API server's certificate against the cluster CA.
        clusters: [{ name: 'proxy', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
        users: [{ name: 'sa', token }],
        contexts: [{ name: 'proxy', cluster: 'proxy', user: 'sa' }],
        currentContext: 'proxy',
      });
      return kc;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

class Forbidden extends Error {
  readonly resource: string;
  constructor(resource: string) {
    super(`refused: ${resource}`);
    this.resource = resource;
  }
}

/**
 * Polls `probe` every 100 ms until it returns a value; between polls, checks `stopWhen` (which
 * throws to end the wait early). Fails with `what` after STEP_MS.
 */
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  stopWhen?: () => Promise<void>,
): Promise<T> {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    await stopWhen?.();
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what} (refused: ${proxy.forbidden.join(', ') || 'nothing'})`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------
// The cycle

interface Clients {
  core: CoreV1Api;
  apps: AppsV1Api;
  rbac: RbacAuthorizationV1Api;
  custom: CustomObjectsApi;
}

function adminClients(): Clients {
  const kc = cp.kubeConfig;
  return {
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
  };
}

function mcpServer(namespace: string, description: string): object {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'McpServer',
    metadata: { name: 'tools', namespace },
    spec: {
      auth: { apiKeys: { secretRef: { name: 'tools-api-keys' } } },
      tools: [
        {
          name: 'word_count',
          description,
          runtime: 'python',
          code: 'def main(args):\n    return len(str(args.get("text", "")).split())\n',
        },
      ],
    },
  };
}

function agentPolicy(namespace: string): object {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'AgentPolicy',
    metadata: { name: 'tools-access', namespace },
    spec: {
      servers: { names: ['tools'] },
      rules: [
        {
          effect: 'Allow',
          subjects: [{ kind: 'Agent', name: 'report-bot' }],
          tools: ['*'],
          reason: 'report-bot may use every tool',
        },
      ],
    },
  };
}

function clusterAgentPolicy(namespace: string): object {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'ClusterAgentPolicy',
    metadata: { name: `guardrail-${namespace}` },
    spec: {
      servers: { names: ['tools'] },
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
      rules: [
        {
          effect: 'Deny',
          subjects: [{ kind: 'Agent', name: '*' }],
          tools: ['drop_*'],
          reason: 'destructive tools are never available to agents',
        },
      ],
    },
  };
}

type Conditioned = {
  metadata: { generation?: number; finalizers?: string[] };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
};

const observed = (o: Conditioned) =>
  o.status?.observedGeneration !== undefined &&
  o.status.observedGeneration === o.metadata.generation;

const accepted = (o: Conditioned) =>
  o.status?.conditions?.some((x) => x.type === 'Accepted' && x.status === 'True') ?? false;

/**
 * Create → children, status, policies Accepted; update → new generation observed, the gateway
 * rolled and an `Updated` Event recorded; delete → the McpServer
 * gone and the gateway's ClusterRoleBinding removed. `check` runs between polls and throws to
 * end the cycle early.
 */
async function runCycle(namespace: string, check?: () => Promise<void>): Promise<void> {
  const c = adminClients();
  const plural = { group: GROUP, version: VERSION, namespace };
  await c.core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: 'tools-api-keys' }, stringData: {} },
  });
  await c.custom.createNamespacedCustomObject({
    ...plural,
    plural: 'agentpolicies',
    body: agentPolicy(namespace),
  });
  await c.custom.createClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: 'clusteragentpolicies',
    body: clusterAgentPolicy(namespace),
  });
  await c.custom.createNamespacedCustomObject({
    ...plural,
    plural: 'mcpservers',
    body: mcpServer(namespace, 'Count words.'),
  });
  const getServer = () =>
    c.custom.getNamespacedCustomObject({
      ...plural,
      plural: 'mcpservers',
      name: 'tools',
    }) as Promise<Conditioned>;

  // Create.
  await until(
    'the McpServer status',
    async () =>
      (await getServer()).status?.conditions?.length && observed(await getServer())
        ? true
        : undefined,
    check,
  );
  const gateway = await until(
    'the gateway Deployment',
    () => c.apps.readNamespacedDeployment({ name: 'tools-gateway', namespace }),
    check,
  );
  await until(
    'the executor Deployment',
    () => c.apps.readNamespacedDeployment({ name: 'tools-executor', namespace }),
    check,
  );
  await until(
    'the gateway RoleBinding',
    () => c.rbac.readNamespacedRoleBinding({ name: 'tools-gateway', namespace }),
    check,
  );
  await until(
    'the gateway ClusterRoleBinding',
    () => c.rbac.readClusterRoleBinding({ name: `mcpworks-gateway.${namespace}.tools` }),
    check,
  );
  await until(
    'the AgentPolicy Accepted condition',
    async () => {
      const p = (await c.custom.getNamespacedCustomObject({
        ...plural,
        plural: 'agentpolicies',
        name: 'tools-access',
      })) as Conditioned;
      return observed(p) && accepted(p) ? true : undefined;
    },
    check,
  );
  await until(
    'the ClusterAgentPolicy Accepted condition',
    async () => {
      const p = (await c.custom.getClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'clusteragentpolicies',
        name: `guardrail-${namespace}`,
      })) as Conditioned;
      return observed(p) && accepted(p) ? true : undefined;
    },
    check,
  );

  // Update: a tool change is a new generation and rolls the gateway.
  const before = JSON.stringify(gateway.spec?.template.metadata?.annotations ?? {});
  await c.custom.patchNamespacedCustomObject(
    {
      ...plural,
      plural: 'mcpservers',
      name: 'tools',
      body: [{ op: 'replace', path: '/spec/tools/0/description', value: 'Count the words.' }],
    },
    setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
  );
  await until(
    'the update to be observed',
    async () => (observed(await getServer()) ? true : undefined),
    check,
  );
  await until(
    'the gateway to roll',
    async () => {
      const d = await c.apps.readNamespacedDeployment({ name: 'tools-gateway', namespace });
      return JSON.stringify(d.spec?.template.metadata?.annotations ?? {}) !== before
        ? true
        : undefined;
    },
    check,
  );
  await until(
    'the Updated Event of the rollout',
    async () => {
      const events = await c.core.listNamespacedEvent({ namespace });
      return events.items.some(
        (e) => e.involvedObject.kind === 'McpServer' && e.reason === 'Updated',
      )
        ? true
        : undefined;
    },
    check,
  );

  // Delete: the McpServer goes, and the operator removes the cluster-scoped binding it owned.
  await c.custom.deleteNamespacedCustomObject({ ...plural, plural: 'mcpservers', name: 'tools' });
  await until(
    'the McpServer to be deleted',
    async () => {
      try {
        await getServer();
        return undefined;
      } catch (error) {
        return (error as { code?: number }).code === 404 ? true : undefined;
      }
    },
    check,
  );
  await until(
    'the gateway ClusterRoleBinding to be deleted',
    async () => {
      try {
        await c.rbac.readClusterRoleBinding({ name: `mcpworks-gateway.${namespace}.tools` });
        return undefined;
      } catch (error) {
        return (error as { code?: number }).code === 404 ? true : undefined;
      }
    },
    check,
  );
}

let variant = 0;
/** A controller under the ServiceAccount token; each gets its own Lease so none waits for another. */
function startServiceAccountController(kubeConfig: KubeConfig): {
  controller: Controller;
  started: Promise<void>;
} {
  variant += 1;
  const controller = createController({
    kubeConfig,
    // MCPWORKS_TEST_LOG=debug shows what the controller did.
    logger: process.env['MCPWORKS_TEST_LOG']
      ? createLogger({ level: process.env['MCPWORKS_TEST_LOG'] })
      : silentLogger(),
    concurrency: 2,
    maxBackoffMs: 500,
    recheckMissingInputsMs: 1000,
    leaderElection: {
      namespace: RELEASE_NAMESPACE,
      name: `rbac-test-${variant}`,
      identity: `rbac-test-${variant}`,
      leaseDurationSeconds: 15,
      retryPeriodMs: 200,
    },
  });
  const started = controller.start();
  started.catch(() => {});
  return { controller, started };
}

async function stopController(controller: Controller): Promise<void> {
  await Promise.race([controller.stop(), new Promise((r) => setTimeout(r, 5000).unref())]);
}

/** The same grants as `rules` except one permission (as `permissions()` names it). */
function rulesWithout(rules: readonly PolicyRule[], removed: string): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const rule of rules) {
    for (const group of rule.apiGroups ?? ['']) {
      for (const resource of rule.resources ?? []) {
        const names = rule.resourceNames?.length ? rule.resourceNames : [undefined];
        for (const name of names) {
          const key = (verb: string) => `${group}/${resource}${name ? `/${name}` : ''}:${verb}`;
          const verbs = rule.verbs.filter((v) => key(v) !== removed);
          if (verbs.length === 0) continue;
          out.push({
            apiGroups: [group],
            resources: [resource],
            verbs,
            ...(name ? { resourceNames: [name] } : {}),
          });
        }
      }
    }
  }
  return out;
}

async function replaceRules(role: K8sObject, rules: PolicyRule[]): Promise<void> {
  const applied = await kubectlApply(cp, JSON.stringify({ ...role, rules }));
  assert.equal(applied.code, 0, applied.stderr);
}

/**
 * Drops what a variant left behind (its McpServer, with any finalizer, and its cluster-scoped
 * policy) so the next controller has less to reconcile.
 */
async function forceDeleteServers(namespace: string): Promise<void> {
  const custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const target = { group: GROUP, version: VERSION, namespace, plural: 'mcpservers', name: 'tools' };
  try {
    await custom.patchNamespacedCustomObject(
      { ...target, body: [{ op: 'remove', path: '/metadata/finalizers' }] },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
  } catch {
    // No finalizer, or already gone.
  }
  await custom.deleteNamespacedCustomObject(target).catch(() => undefined);
  await custom
    .deleteClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: 'clusteragentpolicies',
      name: `guardrail-${namespace}`,
    })
    .catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------

describe('least privilege', () => {
  test('the chart ClusterRole is the one in config/rbac/role.yaml', () => {
    const source = parseObjects(readFileSync(join(repoRoot, 'config/rbac/role.yaml'), 'utf8')).find(
      (o) => o.kind === 'ClusterRole' && o.metadata.name.endsWith('controller'),
    );
    assert.ok(source, 'config/rbac/role.yaml has no controller ClusterRole');
    assert.deepEqual(
      permissions(controllerClusterRole().rules as PolicyRule[]),
      permissions(source.rules as PolicyRule[]),
    );
  });

  test('the resource of an API path is named as RBAC names it', () => {
    assert.equal(resourceOfPath('/api/v1/namespaces'), '/namespaces');
    assert.equal(resourceOfPath('/api/v1/namespaces/a'), '/namespaces');
    assert.equal(resourceOfPath('/api/v1/namespaces/a/secrets?watch=1'), '/secrets');
    assert.equal(resourceOfPath('/api/v1/namespaces/a/secrets/s'), '/secrets');
    assert.equal(
      resourceOfPath('/apis/mcpworks.io/v1alpha1/namespaces/a/mcpservers/x/status'),
      'mcpworks.io/mcpservers/status',
    );
    assert.equal(
      resourceOfPath('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/b'),
      'rbac.authorization.k8s.io/clusterrolebindings',
    );
  });

  test('the controller completes a create/update/delete cycle under the chart ServiceAccount', async () => {
    proxy.forbidden.length = 0;
    const { controller, started } = startServiceAccountController(
      proxy.kubeConfigFor(serviceAccountToken),
    );
    const namespace = await cp.newNamespace('rbac');
    try {
      await runCycle(namespace);
      await started;
      assert.deepEqual(proxy.forbidden, [], 'the API server refused the controller');
    } finally {
      await stopController(controller);
      await forceDeleteServers(namespace);
    }
  });

  test('every rule is needed: without it, the API server refuses the controller', async (t) => {
    const roles = [controllerClusterRole(), only('Role')];
    const unused: string[] = [];
    for (const role of roles) {
      const rules = role.rules as PolicyRule[];
      try {
        for (const [i, rule] of rules.entries()) {
          await replaceRules(
            role,
            rules.filter((_, j) => j !== i),
          );
          proxy.forbidden.length = 0;
          // The full role is refused nothing (the test above), so any refusal now is this
          // rule's: directly (its resource) or through RBAC's escalation check (a Role or
          // binding the controller may no longer grant).
          const refusedForRule = async (): Promise<void> => {
            const hit = proxy.forbidden[0];
            if (hit) throw new Forbidden(hit);
          };
          const { controller } = startServiceAccountController(
            proxy.kubeConfigFor(serviceAccountToken),
          );
          const namespace = await cp.newNamespace('rbac');
          const label = `${role.kind} rule ${JSON.stringify(rule)}`;
          try {
            await runCycle(namespace, refusedForRule);
            unused.push(`${label}: the cycle completed without it`);
          } catch (error) {
            if (error instanceof Forbidden) {
              t.diagnostic(`${label} → refused ${error.resource}`);
            } else {
              unused.push(
                `${label}: no 403 for it (${(error as Error).message}; 403s: ${proxy.forbidden.join(', ') || 'none'})`,
              );
            }
          } finally {
            await stopController(controller);
            await forceDeleteServers(namespace);
          }
        }
      } finally {
        await replaceRules(role, rules);
      }
    }
    assert.deepEqual(unused, []);
  });
  // Stricter than the rule matrix: one variant per verb of each resource (~20-40 s).
  test('every permission is needed (one verb of one resource at a time)', async (t) => {
    const roles = [controllerClusterRole(), only('Role')];
    const unused: string[] = [];
    for (const role of roles) {
      const rules = role.rules as PolicyRule[];
      try {
        for (const permission of permissions(rules)) {
          await replaceRules(role, rulesWithout(rules, permission));
          proxy.forbidden.length = 0;
          const refused = async (): Promise<void> => {
            const hit = proxy.forbidden[0];
            if (hit) throw new Forbidden(hit);
          };
          const { controller } = startServiceAccountController(
            proxy.kubeConfigFor(serviceAccountToken),
          );
          const namespace = await cp.newNamespace('rbac');
          try {
            await runCycle(namespace, refused);
            unused.push(`${role.kind} ${permission}: the cycle completed without it`);
          } catch (error) {
            if (error instanceof Forbidden)
              t.diagnostic(`${role.kind} ${permission} → refused ${error.resource}`);
            else unused.push(`${role.kind} ${permission}: no 403 (${(error as Error).message})`);
          } finally {
            await stopController(controller);
            await forceDeleteServers(namespace);
          }
        }
      } finally {
        await replaceRules(role, rules);
      }
    }
    assert.deepEqual(unused, []);
  });
});

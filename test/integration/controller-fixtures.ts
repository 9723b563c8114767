// Shared by test/integration/controller*.test.ts and test/bench/controller.bench.ts: CRDs from
// config/crd (the generated files a user installs), small McpServer builders and a poller.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { createKubeClient, type KubeClient } from '../../src/k8s/client.ts';
import type { ResourceType } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { repoRoot } from '../harness/paths.ts';

const CRD: ResourceType = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  plural: 'customresourcedefinitions',
  namespaced: false,
};

/** Creates the CRDs of config/crd/bases and waits until the API server serves them. */
export async function installCrds(kubeConfig: KubeConfig): Promise<void> {
  const client = createKubeClient(kubeConfig);
  const dir = join(repoRoot, 'config', 'crd', 'bases');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  if (files.length === 0) throw new Error(`no CRDs in ${dir}: run \`make crds\``);
  for (const file of files) {
    const crd = parse(readFileSync(join(dir, file), 'utf8')) as KubeObject;
    await client.apply(CRD, crd);
  }
  await waitFor('CRDs established', async () => {
    for (const file of files) {
      const name =
        (parse(readFileSync(join(dir, file), 'utf8')) as KubeObject).metadata?.name ?? '';
      const crd = await client.get<KubeObject>(CRD, name);
      const conditions =
        ((crd?.['status'] as { conditions?: { type: string; status: string }[] }) ?? {})
          .conditions ?? [];
      if (!conditions.some((c) => c.type === 'Established' && c.status === 'True')) return false;
    }
    return true;
  });
}

const CLUSTER_ROLE: ResourceType = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRole',
  plural: 'clusterroles',
  namespaced: false,
};

/**
 * Applies the shared mcpworks-gateway ClusterRole from config/rbac/role.yaml (installed by the
 * chart, not by the controller), which the controller binds each gateway to.
 */
export async function installGatewayClusterRole(admin: KubeClient): Promise<void> {
  const text = readFileSync(join(repoRoot, 'config', 'rbac', 'role.yaml'), 'utf8');
  const role = parseAllDocuments(text)
    .map((doc) => doc.toJS() as KubeObject)
    .find((obj) => obj.metadata?.name === 'mcpworks-gateway');
  if (!role) throw new Error('no mcpworks-gateway ClusterRole in config/rbac/role.yaml');
  await admin.apply(CLUSTER_ROLE, role);
}

/** Polls `probe` every `intervalMs` until it returns a truthy value; fails with `what` on timeout. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface ServerOptions {
  tools?: {
    name: string;
    code?: string;
    codeFrom?: { configMapKeyRef: { name: string; key: string } };
    secretEnv?: { name: string; secretKeyRef: { name: string; key: string } }[];
    egress?: { host: string; ports?: number[] }[];
  }[];
  apiKeysSecret?: string;
  labels?: Record<string, string>;
  gatewayReplicas?: number;
  executorImage?: string;
}

/** A minimal valid McpServer manifest. */
export function mcpServer(
  namespace: string,
  name: string,
  options: ServerOptions = {},
): KubeObject {
  const tools = (options.tools ?? [{ name: 'echo', code: 'print("hi")' }]).map((t) => ({
    name: t.name,
    description: `tool ${t.name}`,
    runtime: 'python',
    ...(t.codeFrom ? { codeFrom: t.codeFrom } : { code: t.code ?? 'print("hi")' }),
    ...(t.secretEnv ? { secretEnv: t.secretEnv } : {}),
    ...(t.egress ? { egress: t.egress } : {}),
  }));
  return {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name, namespace, ...(options.labels ? { labels: options.labels } : {}) },
    spec: {
      tools,
      auth: options.apiKeysSecret
        ? { apiKeys: { secretRef: { name: options.apiKeysSecret } } }
        : { serviceAccountTokens: { audiences: ['mcpworks'] } },
      ...(options.gatewayReplicas !== undefined
        ? { gateway: { replicas: options.gatewayReplicas } }
        : {}),
      ...(options.executorImage !== undefined
        ? { executor: { image: options.executorImage } }
        : {}),
    },
  };
}

export function agentPolicy(
  namespace: string,
  name: string,
  conditions: string[] = [],
): KubeObject {
  return {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'AgentPolicy',
    metadata: { name, namespace },
    spec: {
      servers: { selector: {} },
      rules: [
        {
          effect: 'Allow',
          subjects: [{ kind: 'Agent', name: 'a' }],
          tools: ['*'],
          ...(conditions.length > 0 ? { conditions } : {}),
          reason: 'test',
        },
      ],
    },
  };
}

export function condition(
  obj: KubeObject | undefined,
  type: string,
): { status: string; reason: string; message: string; observedGeneration?: number } | undefined {
  const conditions = (
    (obj?.['status'] as {
      conditions?: { type: string; status: string; reason: string; message: string }[];
    }) ?? {}
  ).conditions;
  return conditions?.find((c) => c.type === type);
}

/** A client for the test's own writes, under its own field manager (never the controller's). */
export function adminClient(kubeConfig: KubeConfig): KubeClient {
  return createKubeClient(kubeConfig, { fieldManager: 'integration-test' });
}

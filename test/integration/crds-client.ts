/**
 * A raw JSON client for the CRD tests. The typed @kubernetes/client-node APIs serialize through
 * their models, which silently drop fields they do not know (an `x-kubernetes-int-or-string` in a
 * CRD schema, or any field under test), and they cannot ask for strict field validation. This
 * sends exactly the bytes given, as kubectl does.
 */
import { request, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface KubeResponse {
  status: number;
  body: Record<string, unknown>;
}

export async function kubeRequest(
  kc: KubeConfig,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<KubeResponse> {
  const server = kc.getCurrentCluster()?.server;
  if (server === undefined) throw new Error('kubeconfig has no current cluster');
  const url = new URL(path, server);
  const options: RequestOptions = {
    method,
    hostname: url.hostname,
    port: url.port,
    path: `${url.pathname}${url.search}`,
    headers: { accept: 'application/json', 'content-type': contentType },
    timeout: 30_000,
  };
  await kc.applyToHTTPSOptions(options);
  const payload =
    body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: Record<string, unknown>;
        try {
          parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
        } catch {
          parsed = { message: text };
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** The REST path of an object of one of our kinds (or a core v1 kind), for create. */
export function collectionPath(obj: {
  apiVersion: string;
  kind: string;
  metadata: { namespace?: string };
}): string {
  const plural = PLURALS[obj.kind];
  if (plural === undefined) throw new Error(`no REST path known for kind ${obj.kind}`);
  const base = obj.apiVersion === 'v1' ? '/api/v1' : `/apis/${obj.apiVersion}`;
  const ns =
    obj.kind === 'ClusterAgentPolicy' ? '' : `/namespaces/${obj.metadata.namespace ?? 'default'}`;
  return `${base}${ns}/${plural}`;
}

const PLURALS: Record<string, string> = {
  McpServer: 'mcpservers',
  AgentPolicy: 'agentpolicies',
  ClusterAgentPolicy: 'clusteragentpolicies',
  Secret: 'secrets',
  ConfigMap: 'configmaps',
};

/**
 * Installs the committed CRDs (crds/*.yaml, exactly the bytes users apply) and waits until each is
 * Established. Other suites that need the CRDs can call it too.
 */
export async function installCrds(
  kc: KubeConfig,
  crdsDir: string,
  timeoutMs = 60_000,
): Promise<string[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const { parse } = await import('yaml');
  const names: string[] = [];
  for (const file of (await readdir(crdsDir)).filter((f) => f.endsWith('.yaml')).sort()) {
    const crd = parse(await readFile(`${crdsDir}/${file}`, 'utf8')) as {
      metadata: { name: string };
    };
    const res = await kubeRequest(
      kc,
      'POST',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      crd,
    );
    if (res.status !== 201 && res.status !== 409) {
      throw new Error(`installing ${file}: HTTP ${res.status}: ${String(res.body.message)}`);
    }
    names.push(crd.metadata.name);
  }
  const deadline = Date.now() + timeoutMs;
  for (const name of names) {
    for (;;) {
      const res = await kubeRequest(
        kc,
        'GET',
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
      );
      const conditions = (
        res.body.status as { conditions?: Array<{ type: string; status: string }> } | undefined
      )?.conditions;
      if (conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline)
        throw new Error(`CRD ${name} not Established after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return names;
}

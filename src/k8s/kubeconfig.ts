/**
 * Where the API server is and how to authenticate to it: a kubeconfig file or the in-cluster
 * ServiceAccount. Our own small loader instead of @kubernetes/client-node's KubeConfig, whose
 * import alone costs the controller ~90 MB of memory (it pulls the whole generated API). It
 * covers what an operator uses: client certificates, bearer tokens (inline or file, re-read so
 * projected tokens rotate) and the in-cluster configuration. Exec and auth-provider plugins are
 * refused with a clear error rather than ignored.
 */
import { readFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { ErrorCode, McpworksError } from '../shared/errors.ts';

/** The part of a kube configuration the client needs; @kubernetes/client-node's KubeConfig fits it too. */
export interface KubeConnection {
  getCurrentCluster(): { server: string } | null;
  applyToHTTPSOptions(options: RequestOptions): Promise<void>;
}

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

type Cluster = {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
};
type User = {
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  token?: string;
  tokenFile?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
  username?: string;
};

function invalid(message: string): McpworksError {
  return new McpworksError(ErrorCode.InvalidInput, message);
}

function pick<T>(
  list: unknown,
  key: 'cluster' | 'user' | 'context',
  name: string | undefined,
  file: string,
): T {
  const entries = (Array.isArray(list) ? list : []) as Record<string, unknown>[];
  const entry = entries.find((e) => e['name'] === name);
  if (!entry) throw invalid(`${file}: no ${key} named ${JSON.stringify(name)}`);
  return (entry[key] ?? {}) as T;
}

/** Loads a kubeconfig file (its current context). */
export function loadKubeconfigFile(path: string): KubeConnection {
  let doc: Record<string, unknown>;
  try {
    doc = parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new McpworksError(
      ErrorCode.InvalidInput,
      `cannot read kubeconfig ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const base = dirname(path);
  const resolve = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const contextName = doc['current-context'] as string | undefined;
  const context = pick<{ cluster?: string; user?: string }>(
    doc['contexts'],
    'context',
    contextName,
    path,
  );
  const cluster = pick<Cluster>(doc['clusters'], 'cluster', context.cluster, path);
  const user = context.user ? pick<User>(doc['users'], 'user', context.user, path) : {};
  if (user.exec || user['auth-provider']) {
    throw invalid(
      `${path}: user ${context.user} uses an exec or auth-provider plugin, which mcpworks does not run; use a token or client certificate`,
    );
  }
  if (!cluster.server) throw invalid(`${path}: cluster ${context.cluster} has no server`);
  const fromData = (data: string | undefined, file: string | undefined) =>
    data ? Buffer.from(data, 'base64') : file ? readFileSync(resolve(file)) : undefined;
  const ca = fromData(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = fromData(user['client-certificate-data'], user['client-certificate']);
  const key = fromData(user['client-key-data'], user['client-key']);
  const tokenFile = user.tokenFile ? resolve(user.tokenFile) : undefined;
  return connection(cluster.server, {
    ca,
    cert,
    key,
    rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
    servername: cluster['tls-server-name'],
    token: () => user.token ?? (tokenFile ? readFileSync(tokenFile, 'utf8').trim() : undefined),
  });
}

/** The in-cluster configuration: the pod's ServiceAccount token (re-read each time) and CA. */
export function loadInCluster(
  env: Readonly<Record<string, string | undefined>>,
  dir = IN_CLUSTER_DIR,
): KubeConnection {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host || !port)
    throw invalid(
      'not running in a cluster (KUBERNETES_SERVICE_HOST is not set) and no kubeconfig given',
    );
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return connection(server, {
    ca: readFileSync(join(dir, 'ca.crt')),
    rejectUnauthorized: true,
    token: () => readFileSync(join(dir, 'token'), 'utf8').trim(),
  });
}

/** `--kubeconfig`, else $KUBECONFIG (first entry), else in-cluster, else ~/.kube/config. */
export function loadKubeConnection(options: {
  kubeconfig?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
}): KubeConnection {
  if (options.kubeconfig) return loadKubeconfigFile(options.kubeconfig);
  const fromEnv = options.env['KUBECONFIG']?.split(':').find((p) => p !== '');
  if (fromEnv) return loadKubeconfigFile(fromEnv);
  if (options.env['KUBERNETES_SERVICE_HOST']) return loadInCluster(options.env);
  const home = options.env['HOME'];
  if (home) return loadKubeconfigFile(join(home, '.kube', 'config'));
  throw invalid('no kubeconfig and not running in a cluster');
}

function connection(
  server: string,
  tls: {
    ca?: Buffer | undefined;
    cert?: Buffer | undefined;
    key?: Buffer | undefined;
    rejectUnauthorized: boolean;
    servername?: string | undefined;
    token: () => string | undefined;
  },
): KubeConnection {
  return {
    getCurrentCluster: () => ({ server }),
    async applyToHTTPSOptions(options) {
      if (tls.ca) options.ca = tls.ca;
      if (tls.cert) options.cert = tls.cert;
      if (tls.key) options.key = tls.key;
      if (tls.servername) options.servername = tls.servername;
      options.rejectUnauthorized = tls.rejectUnauthorized;
      const token = tls.token();
      if (token)
        options.headers = {
          ...(options.headers as Record<string, string>),
          authorization: `Bearer ${token}`,
        };
    },
  };
}

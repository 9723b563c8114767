// A real Kubernetes control plane for tests, started the way controller-runtime's envtest does:
// etcd and kube-apiserver (optionally kube-controller-manager) on random 127.0.0.1 ports, with a
// fresh CA, serving and admin client certificates, a ServiceAccount issuer and signing key, and
// RBAC authorization. No scheduler or kubelet: Pods are stored, never run.
//
// Usage in a test file (one control plane per file; use a fresh namespace per test):
//
//   import { after, before, test } from 'node:test';
//   import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
//   let cp: ControlPlane;
//   before(async () => { cp = await startControlPlane(); });
//   after(() => cp?.stop());
//   test('...', async () => { const ns = await cp.newNamespace('my-test'); ... });
//
// Teardown also happens when the test process exits or is killed (see processes.ts). To look at
// the component logs of a run, set MCPWORKS_KEEP_CONTROLPLANE_DIR=1: stop() then keeps the dir.
// Startup failures always include the tail of each component's log in the error.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { controlPlaneBinDir, isExecutable } from './paths.ts';
import { createPki, issueCertificate, type Pki } from './pki.ts';
import {
  Cleanup,
  freePort,
  startProcess,
  stopProcess,
  tail,
  type ManagedProcess,
} from './processes.ts';

export interface ControlPlaneOptions {
  /**
   * Admission plugins to enable beyond the defaults, e.g. `OwnerReferencesPermissionEnforcement`
   * (the RBAC least-privilege test needs it to prove the `<kind>/finalizers` rule).
   */
  admissionPlugins?: readonly string[];
  /** Also run kube-controller-manager (garbage collector, Deployment/ReplicaSet, namespaces). */
  controllerManager?: boolean;
  /** Startup deadline for each component in milliseconds (default 90 s). */
  startTimeoutMs?: number;
  /** Where the binaries are; default `$MCPWORKS_CONTROLPLANE_BIN` or the build cache. */
  binDir?: string;
  /** Service ClusterIP range (default 10.0.0.0/24, 254 Services); wider for benchmarks. */
  serviceClusterIpRange?: string;
  /**
   * Node mode, set by startNodeCluster (node.ts): the API server binds and advertises on the
   * node's bridge address, authorizes with Node,RBAC, admits with NodeRestriction and
   * ServiceAccount, reaches kubelets with a client certificate and verifies their serving
   * certificates; the controller manager runs every controller but nodeipam. Implies
   * `controllerManager`. Off by default: the API-only tests keep the envtest-like setup.
   */
  node?: NodeModeOptions;
}

export interface NodeModeOptions {
  /** The address to bind and advertise (the node bridge's). */
  address: string;
  /** The Service range; its first address (the `kubernetes` Service) joins the serving SANs. */
  serviceClusterIpRange: string;
  kubernetesServiceIp: string;
}

export interface ControlPlane {
  /** Admin (system:masters) client configuration. */
  kubeConfig: KubeConfig;
  /** The admin kubeconfig as a file, for kubectl, helm or a controller process. */
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** The `iss` of ServiceAccount tokens; also serves /.well-known/openid-configuration. */
  serviceAccountIssuer: string;
  /** PEM of the CA that signed the serving certificate (and client certificates). */
  caCertPem: string;
  binDir: string;
  /** The temporary state directory (certificates, etcd data, logs); removed by stop(). */
  dir: string;
  /** Creates a namespace with a unique name (prefix + random suffix) and returns the name. */
  newNamespace(prefix?: string): Promise<string>;
  /** A client configuration that authenticates with a bearer token, e.g. a ServiceAccount's. */
  kubeconfigFor(user: { token: string }): KubeConfig;
  /** Stops every process and removes the temporary directory; safe to call twice. */
  stop(): Promise<void>;
}

/** The controllers enabled with `controllerManager: true`. */
export const CONTROLLERS = [
  'garbage-collector-controller',
  'deployment-controller',
  'replicaset-controller',
  'namespace-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
] as const;

const CLUSTER = 'mcpworks-test';
const b64 = (s: string) => Buffer.from(s).toString('base64');

export function missingBinaries(binDir: string, names: readonly string[]): string[] {
  return names.filter((n) => !isExecutable(join(binDir, n)));
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = opts.binDir ?? controlPlaneBinDir();
  const needed = [
    'etcd',
    'kube-apiserver',
    ...(opts.controllerManager || opts.node ? ['kube-controller-manager'] : []),
  ];
  const missing = missingBinaries(binDir, needed);
  if (missing.length > 0) {
    throw new Error(
      `test control plane: ${missing.join(', ')} not found in ${binDir}. ` +
        'Run `make components` (test/controlplane/build.sh) to build them, ' +
        'or set MCPWORKS_CONTROLPLANE_BIN to a directory that has them.',
    );
  }
  // A port found free can be taken by a concurrent test process before our component binds it.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binDir, opts);
    } catch (err) {
      if (attempt >= 3 || !(err instanceof PortInUseError)) throw err;
    }
  }
}

class PortInUseError extends Error {}

async function startOnce(binDir: string, opts: ControlPlaneOptions): Promise<ControlPlane> {
  const timeoutMs = opts.startTimeoutMs ?? 90_000;
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-cp-'));
  const cleanup = new Cleanup(dir);
  const procs: ManagedProcess[] = [];
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      // Dependents first: the controller manager, then the apiserver, then etcd. All state is
      // thrown away, so there is nothing to shut down gracefully: SIGTERM costs the apiserver
      // about a second per control plane, SIGKILL nothing.
      for (const p of [...procs].reverse()) await stopProcess(p, 0);
      // Only now: until the processes are gone, the exit hook and the reaper must still know them.
      cleanup.disarm();
      if (process.env.MCPWORKS_KEEP_CONTROLPLANE_DIR) {
        console.error(`test control plane: kept ${dir} (logs, certificates, etcd data)`);
      } else {
        await rm(dir, { recursive: true, force: true });
      }
    })());
  const launch = (name: string, args: string[]): ManagedProcess => {
    const p = startProcess(name, join(binDir, name), args, join(dir, `${name}.log`));
    cleanup.track(p);
    procs.push(p);
    return p;
  };

  try {
    const node = opts.node;
    const pki = await createPki(dir, node ? [node.address, node.kubernetesServiceIp] : []);
    const etcdUrl = await startEtcd(dir, launch, timeoutMs);
    const port = await freePort();
    const server = `https://${node?.address ?? '127.0.0.1'}:${port}`;
    const issuer = server;
    const admissionPlugins = [
      ...(node ? ['NodeRestriction'] : []),
      ...(opts.admissionPlugins ?? []),
    ];
    const apiserver = launch('kube-apiserver', [
      ...(node
        ? await nodeModeApiserverArgs(dir, port, etcdUrl, issuer, node)
        : apiserverArgs(dir, port, etcdUrl, issuer, opts.serviceClusterIpRange)),
      ...(admissionPlugins.length > 0
        ? [`--enable-admission-plugins=${admissionPlugins.join(',')}`]
        : []),
    ]);
    await waitFor(apiserver, timeoutMs, () => httpsOk(server, '/readyz', pki));

    const kubeConfig = adminKubeConfig(server, pki);
    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    await writeFile(kubeconfigPath, kubeconfigYaml(server, pki.caCert, { cert: pki }), {
      mode: 0o600,
    });

    if (opts.controllerManager || node) {
      const kcm = launch('kube-controller-manager', [
        `--kubeconfig=${kubeconfigPath}`,
        `--service-account-private-key-file=${join(dir, 'sa.key')}`,
        `--root-ca-file=${join(dir, 'ca.crt')}`,
        '--leader-elect=false',
        '--use-service-account-credentials=false',
        '--secure-port=0',
        ...(node
          ? [
              '--controllers=*,-nodeipam',
              `--cluster-signing-cert-file=${join(dir, 'ca.crt')}`,
              `--cluster-signing-key-file=${join(dir, 'ca.key')}`,
              `--flex-volume-plugin-dir=${join(dir, 'flexvolume')}`,
            ]
          : [`--controllers=${CONTROLLERS.join(',')}`]),
        // Faster convergence in tests than the production defaults.
        '--concurrent-gc-syncs=5',
        '--namespace-sync-period=10s',
      ]);
      // The serviceaccount controller creating default/default proves the manager is running.
      const core = kubeConfig.makeApiClient(CoreV1Api);
      await waitFor(kcm, timeoutMs, async () => {
        try {
          await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
          return true;
        } catch {
          return false;
        }
      });
    }

    const core = kubeConfig.makeApiClient(CoreV1Api);
    return {
      kubeConfig,
      kubeconfigPath,
      server,
      serviceAccountIssuer: issuer,
      caCertPem: pki.caCert,
      binDir,
      dir,
      async newNamespace(prefix = 'test') {
        const name = `${prefix}-${randomBytes(4).toString('hex')}`.slice(0, 63);
        await core.createNamespace({ body: { metadata: { name } } });
        // With ServiceAccount admission on, Pods are refused until "default" exists.
        if (node) await waitForDefaultServiceAccount(core, name, timeoutMs);
        return name;
      },
      kubeconfigFor(user) {
        const kc = new KubeConfig();
        kc.loadFromOptions({
          clusters: [{ name: CLUSTER, server, caData: b64(pki.caCert), skipTLSVerify: false }],
          users: [{ name: 'token', token: user.token }],
          contexts: [{ name: CLUSTER, cluster: CLUSTER, user: 'token' }],
          currentContext: CLUSTER,
        });
        return kc;
      },
      stop,
    };
  } catch (err) {
    const logs = procs
      .map((p) => `--- ${p.name} (${p.logPath}) ---\n${tail(p.logPath, 30)}`)
      .join('\n');
    await stop();
    const message = err instanceof Error ? err.message : String(err);
    const Failure = /address already in use/i.test(logs) ? PortInUseError : Error;
    throw new Failure(`test control plane failed to start: ${message}\n${logs}`, { cause: err });
  }
}

async function startEtcd(
  dir: string,
  launch: (name: string, args: string[]) => ManagedProcess,
  timeoutMs: number,
): Promise<string> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const etcd = launch('etcd', [
    '--name=default',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=default=${peer}`,
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  await waitFor(etcd, timeoutMs, async () => {
    try {
      const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(2000) });
      return res.ok;
    } catch {
      return false;
    }
  });
  return client;
}

/** apiserverArgs for a control plane with a node: see ControlPlaneOptions.node. */
async function nodeModeApiserverArgs(
  dir: string,
  port: number,
  etcdUrl: string,
  issuer: string,
  node: NodeModeOptions,
): Promise<string[]> {
  const client = await issueCertificate(
    dir,
    '/O=system:masters/CN=kube-apiserver-kubelet-client',
    'apiserver-kubelet-client',
  );
  // ServiceAccount admission stays on (kubelets mount the projected tokens); the lease endpoint
  // reconciler keeps the `kubernetes` Service's endpoint, which is how pods reach the API server.
  const loopbackOnly = new Set([
    '--bind-address',
    '--advertise-address',
    '--service-cluster-ip-range',
    '--authorization-mode',
    '--disable-admission-plugins',
    '--endpoint-reconciler-type',
  ]);
  return [
    ...apiserverArgs(dir, port, etcdUrl, issuer).filter(
      (arg) => !loopbackOnly.has(arg.split('=')[0] ?? ''),
    ),
    `--bind-address=${node.address}`,
    `--advertise-address=${node.address}`,
    `--service-cluster-ip-range=${node.serviceClusterIpRange}`,
    '--authorization-mode=Node,RBAC',
    `--kubelet-client-certificate=${client.certPath}`,
    `--kubelet-client-key=${client.keyPath}`,
    `--kubelet-certificate-authority=${join(dir, 'ca.crt')}`,
    '--kubelet-preferred-address-types=InternalIP',
  ];
}

async function waitForDefaultServiceAccount(
  core: CoreV1Api,
  namespace: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function apiserverArgs(
  dir: string,
  port: number,
  etcdUrl: string,
  issuer: string,
  serviceClusterIpRange = '10.0.0.0/24',
): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
    `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
    `--client-ca-file=${join(dir, 'ca.crt')}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--service-cluster-ip-range=${serviceClusterIpRange}`,
    '--authorization-mode=RBAC',
    '--allow-privileged=true',
    // No kubelet mounts tokens here; the plugin would only reject Pods before the
    // serviceaccount controller created "default" (same choice as envtest).
    '--disable-admission-plugins=ServiceAccount',
    `--service-account-issuer=${issuer}`,
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--endpoint-reconciler-type=none',
    '--profiling=false',
  ];
}

/** Polls `probe` every 100 ms until it returns true; fails when `proc` exits or on timeout. */
async function waitFor(
  proc: ManagedProcess,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.hasExited()) {
      const { code, signal } = await proc.exited;
      throw new Error(`${proc.name} exited during startup (code ${code}, signal ${signal})`);
    }
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function httpsOk(server: string, path: string, pki: Pki): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      new URL(path, server),
      { ca: pki.caCert, cert: pki.adminCert, key: pki.adminKey, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function adminKubeConfig(server: string, pki: Pki): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: CLUSTER, server, caData: b64(pki.caCert), skipTLSVerify: false }],
    users: [{ name: 'admin', certData: b64(pki.adminCert), keyData: b64(pki.adminKey) }],
    contexts: [{ name: CLUSTER, cluster: CLUSTER, user: 'admin' }],
    currentContext: CLUSTER,
  });
  return kc;
}

/** A kubeconfig file body (client certificate or bearer token), all data embedded. */
export function kubeconfigYaml(
  server: string,
  caPem: string,
  auth: { cert: { adminCert: string; adminKey: string } } | { token: string },
): string {
  const user =
    'token' in auth
      ? { token: auth.token }
      : {
          'client-certificate-data': b64(auth.cert.adminCert),
          'client-key-data': b64(auth.cert.adminKey),
        };
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: CLUSTER, cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [{ name: 'admin', user }],
    contexts: [{ name: CLUSTER, context: { cluster: CLUSTER, user: 'admin' } }],
    'current-context': CLUSTER,
  });
}

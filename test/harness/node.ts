// A real node joined to the test control plane: kubelet, containerd, runc, the CNI bridge,
// kube-proxy, kube-scheduler and CoreDNS, so tests can `helm install` the chart and run real pods
// from locally built images. Needs root and the components of `make components`
// (test/controlplane/build-node.sh). One node runs per machine; a second caller waits for it.
//
//   const cluster = await startNodeCluster({ imageTars: [operatorTar] });
//   await cluster.kubectl(['get', 'nodes']);
//   await cluster.stop();
//
// Pod and Service addresses exist only on this machine: the node has a bridge of its own, pods
// get routes for the pod and Service ranges only (no default route), CoreDNS answers
// cluster.local and NXDOMAIN for anything else, and an nftables guard (see guardRuleset) drops
// whatever would leave by another interface; guardCounters() reads its counters. A test's own
// "outside" (`outsideAddresses`) is addresses on a host veth pair that pods get /32 routes to:
// delivered on the host, never forwarded, so a server the test binds there is what pods reach. Teardown (also
// after a crash, see node-host.ts) stops every process by pid, unmounts, and restores the host.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import {
  kubeconfigYaml,
  startControlPlane,
  missingBinaries,
  type ControlPlane,
} from './controlplane.ts';
import {
  cniConfDir,
  cniConflist,
  containerdConfig,
  containerdSocket,
  corefile,
  GUARD_COUNTERS,
  GUARD_TABLE,
  guardRuleset,
  ipv4,
  OUTSIDE_LINK,
  kubeletConfig,
  kubeProxyConfig,
  NODE_NETWORK,
  registryHostsDir,
  registryHostsToml,
  type GuardOptions,
  type NodeLayout,
  type NodeNetwork,
} from './node-config.ts';
import {
  acquireNodeLock,
  processRef,
  recordHost,
  releaseNodeLock,
  tearDownHost,
  writeState,
  type NodeState,
} from './node-host.ts';
import { issueCertificate } from './pki.ts';
import { freePort, startProcess, tail, type ManagedProcess } from './processes.ts';
import { cacheDir, isExecutable } from './paths.ts';

export interface NodeClusterOptions {
  /** docker-archive tars imported into containerd before the node registers. */
  imageTars?: readonly string[];
  /** Node name (default `mcpworks-node`). */
  nodeName?: string;
  /** Startup deadline for each step in milliseconds (default 120 s). */
  startTimeoutMs?: number;
  /** How long to wait for another test's node to go away (default 10 min). */
  lockTimeoutMs?: number;
  /** Directory with the node build (default `$MCPWORKS_NODE_DIR` or `<cache>/node`). */
  nodeDir?: string;
  /**
   * Runs once this process holds the machine's node lock, before anything on the host changes
   * (a test records the host there: another test's node may have run until just before).
   */
  onLocked?: () => void | Promise<void>;
  /** Names CoreDNS answers with these IPv4 addresses (the test's "outside" hosts). */
  dnsAnswers?: Readonly<Record<string, string>>;
  /**
   * IPv4 addresses the host takes on for the test (OUTSIDE_LINK) and pods get a route to: a
   * server the test binds to one of them is what a pod reaches as "the outside". None may be on
   * the host already or in the node's ranges.
   */
  outsideAddresses?: readonly string[];
}

export interface StopOptions {
  /** Runs after the host is restored, while this process still holds the node lock. */
  beforeRelease?: () => void | Promise<void>;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface NodeCluster {
  controlPlane: ControlPlane;
  /** Admin client configuration and its file, for kubectl, helm or a controller process. */
  kubeConfig: KubeConfig;
  kubeconfigPath: string;
  nodeName: string;
  /** The bridge's address: node IP, API server, CoreDNS. */
  bridgeAddress: string;
  net: NodeNetwork;
  /** References of the images the harness ships: the pod sandbox and the network probe. */
  images: { pause: string; nettest: string };
  /** Creates a namespace with a unique name whose default ServiceAccount exists. */
  newNamespace(prefix?: string): Promise<string>;
  /** Runs kubectl against this cluster; rejects with its stderr on a non-zero exit. */
  kubectl(
    args: readonly string[],
    opts?: { input?: string; timeoutMs?: number },
  ): Promise<CommandResult>;
  /** Runs helm against this cluster; rejects with its stderr on a non-zero exit. */
  helm(args: readonly string[], opts?: { timeoutMs?: number }): Promise<CommandResult>;
  /** Imports a docker-archive (or OCI) tar into containerd's k8s.io namespace. */
  importImage(tar: string): Promise<void>;
  /** The same as a shell command line, for a developer (the tar path goes last). */
  importCommand: string;
  /** The cgroup v2 directory of the node's components, whose sockets the guard confines. */
  componentCgroup: string;
  /** Packets the nftables guard dropped, and those it saw leave (`leaked` must stay 0). */
  guardCounters(): Promise<Record<(typeof GUARD_COUNTERS)[number], number>>;
  /** Stops everything, restores the host; safe to call twice. Returns teardown problems. */
  stop(opts?: StopOptions): Promise<string[]>;
}

export const NODE_BINARIES = [
  'kubelet',
  'kube-proxy',
  'kube-scheduler',
  'containerd',
  'containerd-shim-runc-v2',
  'ctr',
  'runc',
  'coredns',
] as const;

export function nodeBuildDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.MCPWORKS_NODE_DIR || join(cacheDir(env), 'node');
}

const reaperPath = fileURLToPath(new URL('./node-reaper.ts', import.meta.url));

function runCommand(
  bin: string,
  args: readonly string[],
  {
    input,
    timeoutMs = 120_000,
    env,
  }: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { maxBuffer: 64 << 20, timeout: timeoutMs, env: env ?? process.env },
      (err, stdout, stderr) => {
        if (err) {
          reject(
            new Error(
              `${bin.split('/').pop()} ${args.join(' ')} failed: ${stderr || err.message}`,
              {
                cause: err,
              },
            ),
          );
        } else resolve({ stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

const sh = (cmd: string, args: string[]) => runCommand(cmd, args, {});

async function until(
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
  procs: readonly ManagedProcess[] = [],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = procs.find((p) => p.hasExited());
    if (dead) throw new Error(`${dead.name} exited while waiting for ${what}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function startNodeCluster(opts: NodeClusterOptions = {}): Promise<NodeCluster> {
  const nodeDir = opts.nodeDir ?? nodeBuildDir();
  const binDir = join(nodeDir, 'bin');
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const nodeName = opts.nodeName ?? 'mcpworks-node';
  const net = NODE_NETWORK;
  if (process.getuid?.() !== 0) {
    throw new Error('test node: kubelet and containerd need root; run the node tests as root');
  }
  const missing = [
    ...missingBinaries(binDir, NODE_BINARIES),
    ...['bridge', 'host-local', 'loopback', 'portmap'].filter(
      (p) => !isExecutable(join(nodeDir, 'cni', p)),
    ),
  ];
  const imageRef = (name: string) => {
    try {
      return readFileSync(join(nodeDir, 'images', `${name}.ref`), 'utf8').trim();
    } catch {
      missing.push(`images/${name}.tar`);
      return '';
    }
  };
  const images = { pause: imageRef('pause'), nettest: imageRef('nettest') };
  if (missing.length > 0) {
    throw new Error(
      `test node: ${missing.join(', ')} not found in ${nodeDir}. Run \`make components\` ` +
        '(test/controlplane/build-node.sh), or set MCPWORKS_NODE_DIR to a node build.',
    );
  }

  const outside = [...(opts.outsideAddresses ?? [])].map(ipv4);
  const inNodeRanges = (a: string) => [net.podCidr, net.serviceCidr].some((c) => inCidr(a, c));
  if (outside.some(inNodeRanges))
    throw new Error(`test node: outside addresses ${outside} overlap the node's ranges`);

  const owner = processRef('owner', process.pid);
  await acquireNodeLock(owner, opts.lockTimeoutMs ?? 600_000);
  try {
    await opts.onLocked?.();
  } catch (err) {
    await releaseNodeLock();
    throw err;
  }
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-node-'));
  const layout: NodeLayout = {
    dir,
    binDir,
    cniBinDir: join(nodeDir, 'cni'),
    net,
    nodeName,
    pauseImage: images.pause,
  };
  const socket = containerdSocket(layout);
  let state: NodeState;
  try {
    state = await recordHost(owner, dir, net, socket);
    if (outside.length > 0) {
      const held = await hostAddresses();
      const taken = outside.filter((a) => held.includes(a));
      if (taken.length > 0) throw new Error(`test node: the host already has ${taken}`);
      if ((await hostLinks()).includes(OUTSIDE_LINK.name))
        throw new Error(`test node: ${OUTSIDE_LINK.name} exists and is not this node's`);
      state.outside = { link: OUTSIDE_LINK.name, addresses: outside };
    }
    await writeState(state);
  } catch (err) {
    await releaseNodeLock();
    throw err;
  }
  // Not the test's stdio: a detached holder of its pipes would keep a test runner waiting.
  const reaperLog = openSync(join(nodeDir, 'reaper.log'), 'a');
  const reaper = spawn(process.execPath, [reaperPath, String(owner.pid), owner.start], {
    detached: true,
    stdio: ['ignore', reaperLog, reaperLog],
  });
  closeSync(reaperLog);
  reaper.unref();

  const procs: ManagedProcess[] = [];
  let cp: ControlPlane | undefined;
  let stopped: Promise<string[]> | undefined;
  const stop = (stopOpts: StopOptions = {}): Promise<string[]> =>
    (stopped ??= (async () => {
      // Whatever fails here, the reaper goes and the lock is released: a lock left held would
      // stall every later node of the machine until its wait times out.
      try {
        const problems = await tearDownHost(state).catch((err: unknown) => [
          `teardown: ${err instanceof Error ? err.message : String(err)}`,
        ]);
        await cp?.stop();
        await stopOpts.beforeRelease?.();
        return problems;
      } finally {
        if (reaper.pid) {
          try {
            process.kill(reaper.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
        await releaseNodeLock();
      }
    })());
  const logs = join(dir, 'logs');
  // Each component joins the node's cgroup before it execs, so its first socket is guarded.
  const launch = async (
    name: string,
    args: string[],
    env: NodeJS.ProcessEnv = process.env,
  ): Promise<ManagedProcess> => {
    const p = startProcess(
      name,
      '/bin/sh',
      [
        '-c',
        'echo $$ > "$0/cgroup.procs" && exec "$@"',
        state.componentCgroup,
        join(binDir, name),
        ...args,
      ],
      join(logs, `${name}.log`),
      env,
    );
    procs.push(p);
    state.processes.push(processRef(name, p.pid));
    await writeState(state);
    return p;
  };

  try {
    await mkdir(logs);
    await mkdir(state.componentCgroup, { recursive: true });
    await setUpNetwork(net, {
      componentCgroup: relative('/sys/fs/cgroup', state.componentCgroup),
      forwardOnlyOnBridge: state.sysctls['net.ipv4.ip_forward'] === '0',
    });
    if (state.outside) await setUpOutside(state.outside.addresses);

    cp = await startControlPlane({
      node: {
        address: net.address,
        serviceClusterIpRange: net.serviceCidr,
        kubernetesServiceIp: net.kubernetesServiceIp,
      },
      startTimeoutMs: timeoutMs,
    });
    const pkiDir = cp.dir;
    const admin = cp.kubeconfigPath;
    const kubeletClient = await issueCertificate(
      pkiDir,
      `/O=system:nodes/CN=system:node:${nodeName}`,
      'kubelet-client',
    );
    const kubeletServing = await issueCertificate(
      pkiDir,
      `/CN=system:node:${nodeName}`,
      'kubelet-serving',
      [net.address],
    );
    const kubeletKubeconfig = join(dir, 'kubelet.kubeconfig');
    await writeFile(
      kubeletKubeconfig,
      kubeconfigYaml(cp.server, cp.caCertPem, {
        cert: {
          adminCert: readFileSync(kubeletClient.certPath, 'utf8'),
          adminKey: readFileSync(kubeletClient.keyPath, 'utf8'),
        },
      }),
      { mode: 0o600 },
    );

    await mkdir(cniConfDir(layout), { recursive: true });
    await mkdir(join(registryHostsDir(layout), '_default'), { recursive: true });
    const resolvConf = join(dir, 'resolv.conf');
    const [proxyHealthz, proxyMetrics, dnsReady] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    await Promise.all([
      writeFile(join(dir, 'containerd.toml'), containerdConfig(layout)),
      writeFile(join(registryHostsDir(layout), '_default', 'hosts.toml'), registryHostsToml()),
      writeFile(join(cniConfDir(layout), '10-mcpworks.conflist'), cniConflist(layout, outside)),
      writeFile(resolvConf, `nameserver ${net.address}\n`),
      writeFile(
        join(dir, 'kubelet.yaml'),
        kubeletConfig(layout, {
          caFile: join(pkiDir, 'ca.crt'),
          tlsCertFile: kubeletServing.certPath,
          tlsPrivateKeyFile: kubeletServing.keyPath,
          resolvConf,
        }),
      ),
      writeFile(
        join(dir, 'kube-proxy.yaml'),
        kubeProxyConfig(layout, admin, [proxyHealthz, proxyMetrics]),
      ),
      writeFile(join(dir, 'Corefile'), corefile(net, admin, dnsReady, opts.dnsAnswers)),
    ]);

    // containerd finds its shim on PATH; kubelet and kube-proxy need mount, iptables, conntrack.
    const env = { ...process.env, PATH: `${binDir}:/usr/sbin:/usr/bin:/sbin:/bin` };
    const containerd = await launch('containerd', ['--config', join(dir, 'containerd.toml')], env);
    const ctr = (args: string[]) =>
      runCommand(join(binDir, 'ctr'), ['--address', socket, ...args], { timeoutMs, env });
    await until('containerd', timeoutMs, async () => (await ctr(['version']), true), [containerd]);
    const importImage = async (tar: string): Promise<void> => {
      await ctr(['-n', 'k8s.io', 'images', 'import', '--snapshotter', 'overlayfs', tar]);
    };
    // The sandbox image before the kubelet; the others while the node comes up.
    await importImage(join(nodeDir, 'images', 'pause.tar'));
    const imports = Promise.all(
      [join(nodeDir, 'images', 'nettest.tar'), ...(opts.imageTars ?? [])].map(importImage),
    );
    imports.catch(() => {}); // awaited below; a failure must not go unhandled before then

    const controllers = [
      await launch(
        'kube-scheduler',
        [`--kubeconfig=${admin}`, '--leader-elect=false', '--secure-port=0'],
        env,
      ),
      await launch('kube-proxy', [`--config=${join(dir, 'kube-proxy.yaml')}`], env),
      await launch('coredns', ['-conf', join(dir, 'Corefile')], env),
      await launch(
        'kubelet',
        [
          `--config=${join(dir, 'kubelet.yaml')}`,
          `--kubeconfig=${kubeletKubeconfig}`,
          `--root-dir=${join(dir, 'kubelet')}`,
          `--cert-dir=${join(dir, 'kubelet-pki')}`,
          `--hostname-override=${nodeName}`,
          `--node-ip=${net.address}`,
          '--v=1',
        ],
        env,
      ),
    ];
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await until(
      `node ${nodeName} Ready`,
      timeoutMs,
      async () => {
        const node = await core.readNode({ name: nodeName });
        return !!node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      },
      [containerd, ...controllers],
    );
    await imports;
    await until(
      'CoreDNS ready',
      timeoutMs,
      async () => (await fetch(`http://127.0.0.1:${dnsReady}/ready`)).ok,
      controllers,
    );

    const controlPlane = cp;
    const bin = (name: string) => join(controlPlane.binDir, name);
    return {
      controlPlane,
      kubeConfig: controlPlane.kubeConfig,
      kubeconfigPath: controlPlane.kubeconfigPath,
      nodeName,
      bridgeAddress: net.address,
      net,
      images,
      newNamespace: (prefix) => controlPlane.newNamespace(prefix),
      kubectl: (args, o = {}) =>
        runCommand(bin('kubectl'), [`--kubeconfig=${controlPlane.kubeconfigPath}`, ...args], o),
      helm: (args, o = {}) =>
        runCommand(bin('helm'), [`--kubeconfig=${controlPlane.kubeconfigPath}`, ...args], {
          ...o,
          env: {
            ...process.env,
            HELM_CACHE_HOME: join(dir, 'helm', 'cache'),
            HELM_CONFIG_HOME: join(dir, 'helm', 'config'),
            HELM_DATA_HOME: join(dir, 'helm', 'data'),
          },
        }),
      importImage,
      componentCgroup: state.componentCgroup,
      importCommand: `${join(binDir, 'ctr')} --address ${socket} -n k8s.io images import --snapshotter overlayfs`,
      guardCounters,
      stop,
    };
  } catch (err) {
    const logText = procs
      .map((p) => `--- ${p.name} (${p.logPath}) ---\n${tail(p.logPath, 30)}`)
      .join('\n');
    await stop();
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`test node failed to start: ${message}\n${logText}`, { cause: err });
  }
}

/** The bridge with its address (no IPv6), a host route for the Services, then the guard. */
async function setUpNetwork(net: NodeNetwork, guard: GuardOptions): Promise<void> {
  await runCommand('nft', ['-f', '-'], { input: guardRuleset(net, guard) });
  await sh('ip', ['link', 'add', net.bridge, 'type', 'bridge']);
  await writeFile(`/proc/sys/net/ipv6/conf/${net.bridge}/disable_ipv6`, '1\n');
  await sh('ip', ['addr', 'add', `${net.address}/${net.podCidr.split('/')[1]}`, 'dev', net.bridge]);
  await sh('ip', ['link', 'set', net.bridge, 'up']);
  // Host traffic to an unallocated ClusterIP stays on the bridge instead of the default route.
  await sh('ip', ['route', 'add', net.serviceCidr, 'dev', net.bridge, 'src', net.address]);
}

/** The outside link: a veth pair on the host, its first end carrying `addresses` (/32 each). */
async function setUpOutside(addresses: readonly string[]): Promise<void> {
  const { name, peer } = OUTSIDE_LINK;
  await sh('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', peer]);
  for (const link of [name, peer]) {
    await writeFile(`/proc/sys/net/ipv6/conf/${link}/disable_ipv6`, '1\n');
    await sh('ip', ['link', 'set', link, 'up']);
  }
  for (const address of addresses) await sh('ip', ['addr', 'add', `${address}/32`, 'dev', name]);
}

async function hostAddresses(): Promise<string[]> {
  const { stdout } = await sh('ip', ['-o', '-4', 'addr', 'show']);
  return [...stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!);
}

async function hostLinks(): Promise<string[]> {
  const { stdout } = await sh('ip', ['-o', 'link', 'show']);
  return [...stdout.matchAll(/^\d+: ([^:@\s]+)/gm)].map((m) => m[1]!);
}

/** Whether the IPv4 `address` is in `cidr` (a.b.c.d/n). */
export function inCidr(address: string, cidr: string): boolean {
  const [base = '', bits = '32'] = cidr.split('/');
  const n = (a: string) => a.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
  const size = 2 ** (32 - Number(bits));
  return Math.floor(n(address) / size) === Math.floor(n(base) / size);
}

export async function guardCounters(): Promise<Record<(typeof GUARD_COUNTERS)[number], number>> {
  const { stdout } = await runCommand(
    'nft',
    ['-j', 'list', 'counters', 'table', 'inet', GUARD_TABLE],
    {},
  );
  const parsed = JSON.parse(stdout) as {
    nftables: { counter?: { name: string; packets: number } }[];
  };
  const out = Object.fromEntries(GUARD_COUNTERS.map((c) => [c, 0])) as Record<
    (typeof GUARD_COUNTERS)[number],
    number
  >;
  for (const item of parsed.nftables) {
    const c = item.counter;
    if (c && (GUARD_COUNTERS as readonly string[]).includes(c.name)) {
      out[c.name as (typeof GUARD_COUNTERS)[number]] = c.packets;
    }
  }
  return out;
}

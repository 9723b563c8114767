// The configuration files of the test node, as pure functions of its layout: containerd, CNI,
// kubelet, kube-proxy, CoreDNS and the nftables guard that keeps pod traffic on this machine.
// Settings measured to matter on cgroup v1 machines without CAP_SYS_RESOURCE or AppArmor are
// commented where they are set.
import { join } from 'node:path';
import { stringify } from 'yaml';

/** The node's private network: a bridge of its own, pods and Services on two /24s. */
export interface NodeNetwork {
  bridge: string;
  /** The bridge's address: node IP, API server, kubelet and CoreDNS all listen here. */
  address: string;
  podCidr: string;
  serviceCidr: string;
  /** The first Service address, the `kubernetes` Service. */
  kubernetesServiceIp: string;
}

export const NODE_NETWORK: NodeNetwork = {
  bridge: 'mcpw0',
  address: '10.213.0.1',
  podCidr: '10.213.0.0/24',
  serviceCidr: '10.213.1.0/24',
  kubernetesServiceIp: '10.213.1.1',
};

/**
 * The test's "outside": a veth pair with both ends on the host (no `dummy` module needed) whose
 * first end carries the addresses a test gives it (each a /32). A pod's packet to one of them is
 * routed to the bridge's address (cniConflist) and, the address being local to the host,
 * delivered there (INPUT), never forwarded: the guard stays as it is. Removed on teardown.
 */
export const OUTSIDE_LINK = { name: 'mcpwx0', peer: 'mcpwx1' } as const;

/** The nftables table (family inet) that guards the node's traffic, and its counters. */
export const GUARD_TABLE = 'mcpworks_node';
export const GUARD_COUNTERS = ['forward_dropped', 'egress_dropped', 'leaked'] as const;

/** Where one node's files live (all under its state directory). */
export interface NodeLayout {
  dir: string;
  binDir: string;
  cniBinDir: string;
  net: NodeNetwork;
  nodeName: string;
  /** The sandbox (pause) image reference, imported before the kubelet starts. */
  pauseImage: string;
}

export const containerdSocket = (l: NodeLayout) => join(l.dir, 'containerd', 'containerd.sock');
export const cniConfDir = (l: NodeLayout) => join(l.dir, 'cni', 'net.d');
export const registryHostsDir = (l: NodeLayout) => join(l.dir, 'containerd', 'certs.d');

/** containerd config (version 3) with its own root, state and socket; nothing in system paths. */
export function containerdConfig(l: NodeLayout): string {
  const q = (s: string) => `'${s}'`;
  const cri = "plugins.'io.containerd.cri.v1.runtime'";
  return [
    'version = 3',
    `root = ${q(join(l.dir, 'containerd', 'root'))}`,
    `state = ${q(join(l.dir, 'containerd', 'state'))}`,
    // NRI listens on a hard-coded /var/run/nri socket; the node does not need it.
    "disabled_plugins = ['io.containerd.nri.v1.nri']",
    '[grpc]',
    `  address = ${q(containerdSocket(l))}`,
    '[ttrpc]',
    `  address = ${q(containerdSocket(l) + '.ttrpc')}`,
    `[plugins.'io.containerd.internal.v1.opt']`,
    `  path = ${q(join(l.dir, 'containerd', 'opt'))}`,
    `[plugins.'io.containerd.cri.v1.images']`,
    "  snapshotter = 'overlayfs'",
    `[plugins.'io.containerd.cri.v1.images'.pinned_images]`,
    `  sandbox = ${q(l.pauseImage)}`,
    // Every registry host resolves to a closed local port: nothing is ever pulled from outside.
    `[plugins.'io.containerd.cri.v1.images'.registry]`,
    `  config_path = ${q(registryHostsDir(l))}`,
    `[${cri}]`,
    // Root on these machines lacks CAP_SYS_RESOURCE: without this every sandbox fails with
    // "can't get final child's PID from pipe: EOF" (runc cannot lower oom_score_adj).
    '  restrict_oom_score_adj = true',
    '  disable_apparmor = true',
    `[${cri}.containerd]`,
    "  default_runtime_name = 'runc'",
    `[${cri}.containerd.runtimes.runc]`,
    "  runtime_type = 'io.containerd.runc.v2'",
    `[${cri}.containerd.runtimes.runc.options]`,
    `  BinaryName = ${q(join(l.binDir, 'runc'))}`,
    '  SystemdCgroup = false',
    `[${cri}.cni]`,
    `  bin_dirs = [${q(l.cniBinDir)}]`,
    `  conf_dir = ${q(cniConfDir(l))}`,
    '  max_conf_num = 1',
    `[plugins.'io.containerd.grpc.v1.cri']`,
    "  stream_server_address = '127.0.0.1'",
    "  stream_server_port = '0'",
    '',
  ].join('\n');
}

/** hosts.toml for the `_default` registry: a closed port on loopback. */
export const registryHostsToml = (): string => 'server = "http://127.0.0.1:9"\n';

/**
 * CNI: the bridge with host-local addresses, routes only for pods and Services (and each of the
 * test's `outside` addresses, a /32 by the bridge), no masquerade.
 */
export function cniConflist(l: NodeLayout, outside: readonly string[] = []): string {
  const { net } = l;
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'mcpworks',
      plugins: [
        {
          type: 'bridge',
          bridge: net.bridge,
          isGateway: true,
          isDefaultGateway: false,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: join(l.dir, 'cni', 'ipam'),
            ranges: [
              [{ subnet: net.podCidr, rangeStart: offset(net.address, 9), gateway: net.address }],
            ],
            // No default route: a connect to any other address fails with ENETUNREACH.
            routes: [
              { dst: net.serviceCidr, gw: net.address },
              ...outside.map((address) => ({ dst: `${ipv4(address)}/32`, gw: net.address })),
            ],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

/** `address` if it is a dotted IPv4 address; throws otherwise. */
export function ipv4(address: string): string {
  const parts = address.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new Error(`not an IPv4 address: ${address}`);
  return address;
}

/** The address `n` after `ip` within its /24. */
function offset(ip: string, n: number): string {
  const parts = ip.split('.').map(Number);
  parts[3] = (parts[3] ?? 0) + n;
  return parts.join('.');
}

export interface KubeletFiles {
  caFile: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  resolvConf: string;
}

export function kubeletConfig(l: NodeLayout, f: KubeletFiles): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // Kubernetes 1.35 refuses cgroup v1 unless told otherwise; these machines are cgroup v1.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${containerdSocket(l)}`,
    address: l.net.address,
    port: 10250,
    readOnlyPort: 0,
    healthzPort: 0,
    tlsCertFile: f.tlsCertFile,
    tlsPrivateKeyFile: f.tlsPrivateKeyFile,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: f.caFile },
    },
    authorization: { mode: 'Webhook' },
    clusterDomain: 'cluster.local',
    clusterDNS: [l.net.address],
    resolvConf: f.resolvConf,
    podLogsDir: join(l.dir, 'pod-logs'),
    volumePluginDir: join(l.dir, 'volume-plugins'),
    // Images are imported, never pulled: no garbage collection, and eviction only when dire.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: {
      'memory.available': '100Mi',
      'nodefs.available': '1%',
      'nodefs.inodesFree': '1%',
      'imagefs.available': '1%',
    },
    serializeImagePulls: false,
    maxPods: 60,
    shutdownGracePeriod: '0s',
    nodeStatusUpdateFrequency: '4s',
  });
}

export function kubeProxyConfig(
  l: NodeLayout,
  kubeconfig: string,
  ports: [number, number],
): string {
  return stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    bindAddress: l.net.address,
    healthzBindAddress: `127.0.0.1:${ports[0]}`,
    metricsBindAddress: `127.0.0.1:${ports[1]}`,
    nodePortAddresses: [`${l.net.address}/32`],
    clusterCIDR: l.net.podCidr,
    hostnameOverride: l.nodeName,
    clientConnection: { kubeconfig },
    // Zero leaves the host's conntrack sysctls alone.
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: '0s',
      tcpCloseWaitTimeout: '0s',
    },
    iptables: { minSyncPeriod: '0s', syncPeriod: '30s' },
  });
}

/**
 * CoreDNS: the cluster zones from the API server, `answers` (name → IPv4, the test's own
 * "outside" hosts) and NXDOMAIN for every other name.
 */
export function corefile(
  net: NodeNetwork,
  kubeconfig: string,
  readyPort: number,
  answers: Readonly<Record<string, string>> = {},
): string {
  const answered = Object.entries(answers).flatMap(([name, address]) => {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/.test(name))
      throw new Error(`not a DNS name: ${name}`);
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address))
      throw new Error(`not an IPv4 address: ${address}`);
    return [
      `  template IN A ${name} {`,
      `    match ^${name.replaceAll('.', '[.]')}[.]$`,
      `    answer "{{ .Name }} 5 IN A ${address}"`,
      '    fallthrough',
      '  }',
      // The name exists: other types get an empty answer, not NXDOMAIN.
      `  template IN AAAA ${name} {`,
      `    match ^${name.replaceAll('.', '[.]')}[.]$`,
      '    rcode NOERROR',
      '    fallthrough',
      '  }',
    ];
  });
  return [
    'cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {',
    `  bind ${net.address}`,
    `  ready 127.0.0.1:${readyPort}`,
    '  errors',
    '  cache 5',
    '  kubernetes cluster.local in-addr.arpa ip6.arpa {',
    `    kubeconfig ${kubeconfig}`,
    '    pods insecure',
    '    ttl 5',
    '  }',
    '}',
    '.:53 {',
    `  bind ${net.address}`,
    '  errors',
    ...answered,
    // Nothing is forwarded: the machine's resolver is never asked on a pod's behalf.
    '  template ANY ANY {',
    '    rcode NXDOMAIN',
    '  }',
    '}',
    '',
  ].join('\n');
}

export interface GuardOptions {
  /** The components' cgroup v2, relative to /sys/fs/cgroup (see below). */
  componentCgroup?: string;
  /** Drop every forwarded packet that is not bridge to bridge (ip_forward was off before). */
  forwardOnlyOnBridge?: boolean;
}

/**
 * The nftables guard, installed before any component starts: forwarded packets may only go from
 * the bridge to the bridge, and nothing with a pod or Service address leaves by any other
 * interface. `leaked` counts, after NAT, what would still have gone out: it must stay 0.
 */
export function guardRuleset(
  net: NodeNetwork,
  { componentCgroup, forwardOnlyOnBridge = false }: GuardOptions = {},
): string {
  const b = `"${net.bridge}"`;
  const ranges = `{ ${net.podCidr}, ${net.serviceCidr} }`;
  const own = [
    `ip saddr ${ranges}`,
    `ip daddr ${ranges}`,
    `ct original ip saddr ${ranges}`,
    `ct original ip daddr ${ranges}`,
  ];
  // The node's own processes (kubelet, containerd and what it runs, kube-proxy, CoreDNS) run in
  // one cgroup v2 (path relative to /sys/fs/cgroup): their sockets may reach only loopback and
  // the node's ranges, so not even an image pull or a DNS lookup goes to the machine's network.
  const components = componentCgroup ? `socket cgroupv2 level 1 "${componentCgroup}"` : '';
  const hostEgress = componentCgroup
    ? [
        '  chain components {',
        '    type filter hook output priority filter - 10; policy accept;',
        `    ${components} ip daddr != { 127.0.0.0/8, ${net.podCidr}, ${net.serviceCidr} } counter name "egress_dropped" drop`,
        `    ${components} ip6 daddr != ::1 counter name "egress_dropped" drop`,
        '  }',
      ]
    : [];
  return [
    `table inet ${GUARD_TABLE} {`,
    ...GUARD_COUNTERS.map((c) => `  counter ${c} { }`),
    ...hostEgress,
    '  chain forward {',
    '    type filter hook forward priority filter - 10; policy accept;',
    `    iifname ${b} oifname ${b} accept`,
    `    iifname ${b} counter name "forward_dropped" drop`,
    `    oifname ${b} counter name "forward_dropped" drop`,
    ...own.map((m) => `    ${m} counter name "forward_dropped" drop`),
    // The node turns ip_forward on for the whole machine: when it was off, keep it off for
    // every other interface.
    ...(forwardOnlyOnBridge ? ['    counter name "forward_dropped" drop'] : []),
    '  }',
    '  chain egress {',
    '    type filter hook postrouting priority srcnat - 10; policy accept;',
    `    oifname { ${b}, "lo" } accept`,
    ...own.map((m) => `    ${m} counter name "egress_dropped" drop`),
    '  }',
    '  chain audit {',
    '    type filter hook postrouting priority srcnat + 10; policy accept;',
    `    oifname { ${b}, "lo" } accept`,
    ...own.map((m) => `    ${m} counter name "leaked"`),
    '  }',
    '}',
    '',
  ].join('\n');
}

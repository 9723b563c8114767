/**
 * The pod-level half of tool egress: what the executor's NetworkPolicy lets out when a tool of
 * the server declares `egress`. The executor's egress proxy resolves names itself and refuses
 * non-public addresses (src/executor/egress/addresses.ts); the NetworkPolicy says the same at
 * the node, so a bug in the proxy still cannot reach the cluster network or cloud metadata:
 * DNS to the cluster DNS pods only, the declared ports to public addresses only. Pure.
 */
import { DnsLabelSchema } from '../api/v1alpha1/common.ts';
import type { McpServer } from '../api/v1alpha1/mcpserver.ts';
import { LABEL_KEY_PATTERN } from '../api/v1alpha1/validations.ts';

/** The port of an egress rule without `ports` (EgressRuleSchema). */
export const DEFAULT_EGRESS_PORT = 443;

/**
 * Ranges the NetworkPolicy excludes from `0.0.0.0/0` and `::/0`: never a destination of tool
 * egress. Every one is non-public for the proxy too (executor-egress.test.ts checks both ends of
 * each against classifyAddress); the proxy refuses more (documentation, benchmarking ranges),
 * these are the ones that reach something inside a cluster or a cloud.
 */
export const NON_PUBLIC_IPV4_CIDRS = [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8', // private
  '100.64.0.0/10', // shared address space (CGNAT; Alibaba's metadata 100.100.100.200)
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, cloud metadata 169.254.169.254
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking (used inside some clusters)
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
] as const;

export const NON_PUBLIC_IPV6_CIDRS = [
  '::/96', // unspecified, loopback, IPv4-compatible (IPv4-mapped never leaves a pod as IPv6)
  '64:ff9b:1::/48', // local-use NAT64
  '100::/64', // discard-only
  'fc00::/7', // unique local (ULA; AWS metadata fd00:ec2::254)
  'fe80::/10', // link-local
  'fec0::/10', // site-local (deprecated)
  'ff00::/8', // multicast
] as const;

/** The cluster DNS pods, the one in-cluster destination an executor with egress may reach. */
export interface DnsPeer {
  /** Namespace of the DNS pods (selected by its kubernetes.io/metadata.name label). */
  namespace: string;
  podLabels: Record<string, string>;
}

export const DEFAULT_EXECUTOR_DNS: DnsPeer = {
  namespace: 'kube-system',
  podLabels: { 'k8s-app': 'kube-dns' },
};

/** The union of the TCP ports the tools of `server` may reach, ascending; empty: no egress. */
export function declaredEgressPorts(server: McpServer): number[] {
  const ports = new Set<number>();
  for (const tool of server.spec.tools) {
    for (const rule of tool.egress ?? []) {
      for (const port of rule.ports ?? [DEFAULT_EGRESS_PORT]) ports.add(port);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * The executor NetworkPolicy's egress rules: none when no tool declares egress (all egress
 * denied), else DNS (UDP and TCP 53) to the cluster DNS pods and the declared ports to public
 * IPv4 and IPv6 addresses.
 */
export function executorEgressRules(server: McpServer, dns: DnsPeer): Record<string, unknown>[] {
  const ports = declaredEgressPorts(server);
  if (ports.length === 0) return [];
  return [
    {
      to: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': dns.namespace } },
          podSelector: { matchLabels: dns.podLabels },
        },
      ],
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    },
    {
      to: [
        { ipBlock: { cidr: '0.0.0.0/0', except: [...NON_PUBLIC_IPV4_CIDRS] } },
        { ipBlock: { cidr: '::/0', except: [...NON_PUBLIC_IPV6_CIDRS] } },
      ],
      ports: ports.map((port) => ({ protocol: 'TCP', port })),
    },
  ];
}

const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN);
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * The DNS peer from the operator's flags: a namespace name and `key=value[,key=value]` pod
 * labels (at least one: an empty selector would admit every pod of the namespace). Throws on
 * anything the API server would refuse, so a typo stops the operator at start, not at the
 * first NetworkPolicy apply.
 */
export function parseDnsPeer(namespace: string, podLabels: string): DnsPeer {
  if (!DnsLabelSchema.safeParse(namespace).success)
    throw new Error(`DNS namespace "${namespace}" is not a namespace name`);
  const labels: Record<string, string> = {};
  for (const pair of podLabels.split(',')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? undefined : pair.slice(eq + 1);
    if (
      value === undefined ||
      !LABEL_KEY.test(key) ||
      value.length > 63 ||
      !LABEL_VALUE.test(value)
    )
      throw new Error(`DNS pod labels must be key=value[,key=value]; "${pair}" is not a label`);
    labels[key] = value;
  }
  return { namespace, podLabels: labels };
}

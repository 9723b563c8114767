import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { test } from 'node:test';
import { McpServerSchema, type McpServer } from '../api/v1alpha1/mcpserver.ts';
import { classifyAddress } from '../executor/egress/addresses.ts';
import { desiredExecutorNetworkPolicy } from './desired-access.ts';
import {
  DEFAULT_EXECUTOR_DNS,
  declaredEgressPorts,
  NON_PUBLIC_IPV4_CIDRS,
  NON_PUBLIC_IPV6_CIDRS,
  parseDnsPeer,
} from './executor-egress.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- assertions read deep into built objects */

function server(...egress: (Record<string, unknown>[] | undefined)[]): McpServer {
  return McpServerSchema.parse({
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'demo', namespace: 'team', uid: 'u' },
    spec: {
      auth: { anonymous: { enabled: true } },
      tools: egress.map((rules, i) => ({
        name: `t${i}`,
        description: 't',
        runtime: 'python',
        code: 'x',
        ...(rules === undefined ? {} : { egress: rules }),
      })),
    },
  });
}

const egressOf = (s: McpServer, dns = DEFAULT_EXECUTOR_DNS) =>
  (desiredExecutorNetworkPolicy(s, dns).spec as any).egress;

test('no tool with egress: no egress rule at all (everything denied)', () => {
  assert.deepEqual(egressOf(server(undefined, [])), []);
});

test('the declared ports are the union over all tools, 443 by default, ascending', () => {
  const s = server(
    [{ host: 'api.github.com' }, { host: '*.example.com', ports: [8443, 443] }],
    undefined,
    [{ host: 'db.example.org', ports: [5432, 8443] }],
  );
  assert.deepEqual(declaredEgressPorts(s), [443, 5432, 8443]);
});

test('with egress: DNS to the cluster DNS pods, the declared ports to public addresses only', () => {
  const rules = egressOf(server([{ host: 'api.github.com', ports: [443, 8443] }]));
  assert.deepEqual(rules, [
    {
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
    },
    {
      to: [
        { ipBlock: { cidr: '0.0.0.0/0', except: [...NON_PUBLIC_IPV4_CIDRS] } },
        { ipBlock: { cidr: '::/0', except: [...NON_PUBLIC_IPV6_CIDRS] } },
      ],
      ports: [
        { protocol: 'TCP', port: 443 },
        { protocol: 'TCP', port: 8443 },
      ],
    },
  ]);
});

test('the DNS peer comes from the operator options', () => {
  const rules = egressOf(server([{ host: 'a.example.com' }]), {
    namespace: 'dns',
    podLabels: { app: 'coredns' },
  });
  assert.deepEqual(rules[0].to, [
    {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'dns' } },
      podSelector: { matchLabels: { app: 'coredns' } },
    },
  ]);
});

test('the ingress rule is the same with and without egress', () => {
  const spec = (s: McpServer) => desiredExecutorNetworkPolicy(s, DEFAULT_EXECUTOR_DNS).spec as any;
  const plain = spec(server(undefined));
  const open = spec(server([{ host: 'a.example.com' }]));
  assert.deepEqual(open.ingress, plain.ingress);
  assert.deepEqual(open.policyTypes, ['Ingress', 'Egress']);
});

/** First and last address of a CIDR, and one in the middle. */
function samples(cidr: string): string[] {
  const [network, bits] = cidr.split('/') as [string, string];
  const prefix = Number(bits);
  if (network.includes(':')) {
    const groups = expand6(network);
    const big = groups.reduce((n, g) => (n << 16n) | BigInt(g), 0n);
    const host = (1n << BigInt(128 - prefix)) - 1n;
    return [big, big | (host >> 1n), big | host].map(format6);
  }
  const n = network.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - prefix);
  return [n, n + Math.floor(size / 2), n + size - 1].map((x) =>
    [24, 16, 8, 0].map((s) => Math.floor(x / 2 ** s) % 256).join('.'),
  );
}

function expand6(address: string): number[] {
  const [front, back = ''] = address.split('::') as [string, string?];
  const parse = (p: string) => (p === '' ? [] : p.split(':').map((g) => parseInt(g, 16)));
  const f = parse(front);
  const b = parse(back);
  return [...f, ...Array<number>(8 - f.length - b.length).fill(0), ...b];
}

function format6(n: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(':');
}

test('every excluded range is non-public for the egress proxy too (addresses.ts)', () => {
  for (const cidr of [...NON_PUBLIC_IPV4_CIDRS, ...NON_PUBLIC_IPV6_CIDRS]) {
    for (const address of samples(cidr)) {
      assert.equal(classifyAddress(address).public, false, `${address} of ${cidr}`);
    }
  }
});

test('the ranges the proxy calls private, loopback, link-local, metadata, shared and ULA are excluded', () => {
  const v4 = new BlockList();
  for (const c of NON_PUBLIC_IPV4_CIDRS)
    v4.addSubnet(c.split('/')[0]!, Number(c.split('/')[1]), 'ipv4');
  const v6 = new BlockList();
  for (const c of NON_PUBLIC_IPV6_CIDRS)
    v6.addSubnet(c.split('/')[0]!, Number(c.split('/')[1]), 'ipv6');
  const excluded = (a: string) => (a.includes(':') ? v6.check(a, 'ipv6') : v4.check(a, 'ipv4'));
  for (const address of [
    '10.1.2.3',
    '172.31.255.255',
    '192.168.0.1',
    '127.0.0.1',
    '169.254.169.254',
    '100.100.100.200',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fd00:ec2::254',
    'fe80::1',
  ]) {
    assert.equal(excluded(address), true, address);
    assert.equal(classifyAddress(address).public, false, address);
  }
  for (const address of ['8.8.8.8', '1.1.1.1', '140.82.112.3', '2606:4700:4700::1111']) {
    assert.equal(excluded(address), false, address);
    assert.equal(classifyAddress(address).public, true, address);
  }
});

test('the DNS peer flags: a namespace and key=value pod labels, anything else refused', () => {
  assert.deepEqual(parseDnsPeer('kube-system', 'k8s-app=kube-dns'), DEFAULT_EXECUTOR_DNS);
  assert.deepEqual(parseDnsPeer('dns', 'app.kubernetes.io/name=coredns,tier=node'), {
    namespace: 'dns',
    podLabels: { 'app.kubernetes.io/name': 'coredns', tier: 'node' },
  });
  assert.throws(() => parseDnsPeer('Kube_System', 'a=b'), /not a namespace name/);
  for (const labels of ['', 'k8s-app', 'a=b,', 'a b=c', 'a=b c', `a=${'x'.repeat(64)}`]) {
    assert.throws(() => parseDnsPeer('kube-system', labels), /is not a label/, labels);
  }
});
